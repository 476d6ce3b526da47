/**
 * Result downloads on a worker thread (issue 13, point 3): the HTTP parsing of a result's body,
 * its copy and the file calls of `downloadResult` (results.ts) run there, not on the event loop
 * that acknowledges interactions and runs the platforms' calls. What comes back is the same
 * JobImage, and the body's bytes, moved (transferred), not copied, into this thread's
 * RecentResults for the deliverer. README.md "A result's way through the bot" measures it.
 *
 * One thread per process, started by `start()` (the app does, with the bot) or at the first
 * download, below the main thread's priority (RESULTS_THREAD_NICE), and unref'd while idle: it
 * keeps no process alive. A thread that dies fails the downloads it was running (the tasks fail
 * with RESULT_DOWNLOAD_FAILED, refunded as any failed download is); the next download starts a
 * new one.
 *
 * The thread uses undici's global dispatcher: the bot downloads results with it too (tests that
 * pass their own dispatcher to the engine download on the main thread, see EngineOptions).
 */
import { Worker } from 'node:worker_threads';
import { ResultDownloadError } from './errors.ts';
import type { JobImage } from './job.ts';
import type { RecentResults } from './recent-results.ts';

/**
 * The results thread's nice value on Linux (0 is the main thread's, 19 the lowest): under a full
 * CPU it gets about a tenth of a core against the main thread (the kernel's weights: 110 against
 * 1024), never starved, while acknowledgements go first. README.md "A result's way through the
 * bot" has the figures (19 measured no different).
 */
export const RESULTS_THREAD_NICE = 10;

/** A download as the engine asks for it (jobs/tasks.ts): the same contract as downloadResult. */
export type DownloadResultFn = (url: string, destPath: string, opts: { signal?: AbortSignal | undefined; keep?: RecentResults | undefined }) => Promise<JobImage>;

/** Main thread → results thread. */
export type ToResultsThread = { id: number; url: string; destPath: string; keep: boolean } | { id: number; abort: true };
/** Results thread → main thread: `bytes` is the kept body (its buffer transferred). */
export type FromResultsThread =
  | { id: number; image: JobImage; bytes?: Uint8Array }
  | { id: number; error: { message: string; download: boolean; aborted: boolean } };

interface Pending {
  resolve: (image: JobImage) => void;
  reject: (err: unknown) => void;
  keep: RecentResults | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

export class ResultsWorker {
  #worker: Worker | undefined;
  readonly #pending = new Map<number, Pending>();
  #nextId = 0;
  #closed = false;

  /** Downloads `url` to `destPath` on the results thread; resolves and rejects as downloadResult does. */
  download(url: string, destPath: string, opts: Parameters<DownloadResultFn>[2]): Promise<JobImage> {
    if (this.#closed) return Promise.reject(new ResultDownloadError('the bot is stopping'));
    if (opts.signal?.aborted) return Promise.reject(opts.signal.reason);
    const worker = this.#thread();
    const id = this.#nextId++;
    return new Promise<JobImage>((resolve, reject) => {
      const signal = opts.signal;
      // The thread stops the download and removes its files; the answer (an abort error) then
      // settles this promise with the signal's reason, as downloadResult rejects.
      const onAbort = signal ? () => worker.postMessage({ id, abort: true } satisfies ToResultsThread) : undefined;
      if (onAbort) signal!.addEventListener('abort', onAbort, { once: true });
      this.#pending.set(id, { resolve, reject, keep: opts.keep, signal, onAbort });
      if (this.#pending.size === 1) worker.ref();
      worker.postMessage({ id, url, destPath, keep: opts.keep !== undefined } satisfies ToResultsThread);
    });
  }

  /** Starts the thread now rather than at the first download (which then does not wait for it to load). */
  start(): void {
    if (!this.#closed) this.#thread();
  }

  /** Downloads in flight (for tests and diagnostics). */
  get inFlight(): number {
    return this.#pending.size;
  }

  /** Stops the thread; downloads still running fail. */
  async close(): Promise<void> {
    this.#closed = true;
    const worker = this.#worker;
    this.#worker = undefined;
    if (worker) await worker.terminate();
    this.#failAll(new ResultDownloadError('the bot is stopping'));
  }

  #thread(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(new URL('./results-thread.ts', import.meta.url));
    worker.unref();
    worker.on('message', (m: FromResultsThread) => this.#answer(m));
    const gone = (why: string) => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      this.#failAll(new ResultDownloadError(`the download thread stopped: ${why}`));
    };
    worker.on('error', (err: Error) => gone(err.message || String(err)));
    worker.on('exit', (code) => gone(`exit code ${code}`));
    this.#worker = worker;
    return worker;
  }

  #answer(m: FromResultsThread): void {
    const p = this.#settle(m.id);
    if (!p) return;
    if ('image' in m) {
      if (m.bytes) p.keep?.remember(m.image.path, Buffer.from(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength));
      p.resolve(m.image);
    } else if (m.error.aborted && p.signal?.aborted) p.reject(p.signal.reason);
    else p.reject(m.error.download ? new ResultDownloadError(m.error.message) : new Error(m.error.message));
  }

  #settle(id: number): Pending | undefined {
    const p = this.#pending.get(id);
    if (!p) return undefined;
    this.#pending.delete(id);
    if (p.onAbort) p.signal?.removeEventListener('abort', p.onAbort);
    if (this.#pending.size === 0) this.#worker?.unref();
    return p;
  }

  #failAll(err: Error): void {
    for (const id of [...this.#pending.keys()]) this.#settle(id)?.reject(err);
  }
}
