/**
 * Result downloads, and uploads of result files, on a worker thread (issue 13, point 3): the HTTP
 * parsing of a result's body, its copy and the file calls of `downloadResult` (results.ts) run
 * there, not on the event loop that acknowledges interactions and runs the platforms' calls. What
 * comes back is the same JobImage, and the body's bytes, transferred (moved, not copied), into
 * this thread's RecentResults for the deliverer. A deliverer that sends a result file to an upload
 * URL (Slack's) has the thread read and POST it (`upload`, src/util/file-upload.ts): the bytes
 * never pass through the event loop. docs/benchmarks.md "A result's way through the bot" measures
 * both.
 *
 * One thread per process, started by `start()` (the app does, with the bot) or at the first
 * request, below the main thread's priority (RESULTS_THREAD_NICE), and unref'd while idle: it
 * keeps no process alive. A thread that dies fails the downloads it was running (the tasks fail
 * with RESULT_DOWNLOAD_FAILED, refunded as any failed download is), once the temp files it was
 * writing are removed, and the uploads (the deliverer retries as after any failed upload); the
 * next request starts a new thread.
 *
 * The thread uses undici's global dispatcher: the bot downloads results with it too (tests that
 * pass their own dispatcher to the engine download on the main thread, see EngineOptions).
 */
import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { ResultDownloadError } from './errors.ts';
import type { JobImage } from './job.ts';
import type { Logger } from '../log.ts';
import type { RecentResults } from './recent-results.ts';
import type { FileUpload, FileUploadAnswer } from '../util/file-upload.ts';
import { tempPathFor, type DownloadResultFn } from './results.ts';

/**
 * The results thread's nice value on Linux (0 is the main thread's, 19 the lowest): under a full
 * CPU it gets about a tenth of a core against the main thread (the kernel's weights: 110 against
 * 1024), never starved, while acknowledgements go first. docs/benchmarks.md "A result's way
 * through the bot" has the figures (19 measured no different).
 */
export const RESULTS_THREAD_NICE = 10;

/** Main thread → results thread. */
export type ToResultsThread =
  | { id: number; url: string; destPath: string; tempPath: string; keep: boolean }
  | { id: number; upload: FileUpload }
  | { id: number; abort: true };
/**
 * An error as it crosses threads: its name, message and code, and its cause's (a class does not
 * cross; the name says in the logs what it was, e.g. undici's HeadersTimeoutError).
 */
export interface CrossedError {
  name: string;
  message: string;
  code?: string | undefined;
  cause?: { name: string; message: string; code?: string | undefined } | undefined;
  /** A ResultDownloadError (a download that failed), not an unexpected error. */
  download: boolean;
  /** Thrown because the download was asked to stop. */
  aborted: boolean;
}
/** Results thread → main thread: `bytes` is the kept body (transferred: moved, not copied). */
export type FromResultsThread =
  | { id: number; image: JobImage; bytes?: Uint8Array }
  | { id: number; uploaded: FileUploadAnswer }
  | { id: number; error: CrossedError };

/** How long close() lets running downloads stop and remove their temp files before ending the thread. */
const CLOSE_WAIT_MS = 2_000;
const stopping = () => new ResultDownloadError('the bot is stopping');

type Pending =
  | {
      kind: 'download';
      /** The download's temp file (chosen here, so a thread that dies leaves no file this side cannot name). */
      tempPath: string;
      resolve: (image: JobImage) => void;
      reject: (err: unknown) => void;
      keep: RecentResults | undefined;
      signal: AbortSignal | undefined;
      onAbort: (() => void) | undefined;
    }
  | { kind: 'upload'; resolve: (answer: FileUploadAnswer) => void; reject: (err: unknown) => void; signal?: undefined; onAbort?: undefined };

export class ResultsWorker {
  #worker: Worker | undefined;
  readonly #pending = new Map<number, Pending>();
  #nextId = 0;
  #closed = false;
  #closing: Promise<void> | undefined;
  /** #lose's work in progress (close() waits for it). */
  readonly #cleanups = new Set<Promise<void>>();
  #drained: (() => void) | undefined;
  readonly #log: Logger | undefined;

  readonly #program: URL;

  /**
   * `log`: where a thread that stopped unexpectedly is reported. `program`: the thread's program,
   * results-thread.ts (tests pass one that dies).
   */
  constructor(opts: { log?: Logger; program?: URL } = {}) {
    this.#log = opts.log;
    this.#program = opts.program ?? new URL('./results-thread.ts', import.meta.url);
  }

  /** Downloads `url` to `destPath` on the results thread; resolves and rejects as downloadResult does. */
  download(url: string, destPath: string, opts: Parameters<DownloadResultFn>[2]): Promise<JobImage> {
    if (this.#closed) return Promise.reject(stopping());
    if (opts.signal?.aborted) return Promise.reject(opts.signal.reason);
    const worker = this.#thread();
    const id = this.#nextId++;
    return new Promise<JobImage>((resolve, reject) => {
      const signal = opts.signal;
      // The thread stops the download and removes its files; the answer (an abort error) then
      // settles this promise with the signal's reason, as downloadResult rejects.
      const onAbort = signal ? () => worker.postMessage({ id, abort: true } satisfies ToResultsThread) : undefined;
      if (onAbort) signal!.addEventListener('abort', onAbort, { once: true });
      const tempPath = tempPathFor(destPath);
      this.#pending.set(id, { kind: 'download', tempPath, resolve, reject, keep: opts.keep, signal, onAbort });
      if (this.#pending.size === 1) worker.ref();
      worker.postMessage({ id, url, destPath, tempPath, keep: opts.keep !== undefined } satisfies ToResultsThread);
    });
  }

  /**
   * POSTs a file on the results thread (postFile, src/util/file-upload.ts, reading it there);
   * resolves with the answer's status and text, rejects on a network error or a thread that died.
   */
  upload(upload: FileUpload): Promise<FileUploadAnswer> {
    if (this.#closed) return Promise.reject(failure('upload', stopping()));
    const worker = this.#thread();
    const id = this.#nextId++;
    return new Promise<FileUploadAnswer>((resolve, reject) => {
      this.#pending.set(id, { kind: 'upload', resolve, reject });
      if (this.#pending.size === 1) worker.ref();
      worker.postMessage({ id, upload } satisfies ToResultsThread);
    });
  }

  /** Starts the thread now rather than at the first download (which then does not wait for it to load). */
  start(): void {
    if (!this.#closed) this.#thread();
  }

  /** Downloads and uploads in flight (for tests and diagnostics). */
  get inFlight(): number {
    return this.#pending.size;
  }

  /**
   * Stops the thread. Downloads still running are stopped there first, so their temp files are
   * removed (within `maxWaitMs`); they fail with "the bot is stopping", as do later ones.
   */
  close(maxWaitMs = CLOSE_WAIT_MS): Promise<void> {
    this.#closing ??= this.#close(maxWaitMs);
    return this.#closing;
  }

  async #close(maxWaitMs: number): Promise<void> {
    this.#closed = true;
    const worker = this.#worker;
    if (worker && this.#pending.size > 0) {
      const drained = new Promise<void>((resolve) => {
        const giveUp = setTimeout(resolve, maxWaitMs);
        this.#drained = () => {
          clearTimeout(giveUp);
          resolve();
        };
      });
      for (const id of this.#pending.keys()) worker.postMessage({ id, abort: true } satisfies ToResultsThread);
      await drained;
    }
    this.#worker = undefined;
    if (worker) await worker.terminate();
    await this.#lose(stopping());
    // A thread that died just before: its downloads' temp files are being removed.
    await Promise.all(this.#cleanups);
  }

  #thread(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(this.#program);
    worker.unref();
    worker.on('message', (m: FromResultsThread) => this.#answer(m));
    /** `stopped`: resolves once the thread has stopped (it already has on 'exit'). */
    const gone = (why: string, stopped?: Promise<unknown>) => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      this.#log?.error({ why, failed: this.#pending.size }, 'the results thread stopped; its downloads and uploads failed (the next one starts a new thread)');
      // Only this thread's requests: later ones go to the next thread.
      void this.#lose(new ResultDownloadError(`the results thread stopped: ${why}`), stopped);
    };
    // 'error' (an uncaught exception there) comes before the thread has stopped: 'exit' follows.
    worker.on('error', (err: Error) => gone(err.message || String(err), once(worker, 'exit')));
    worker.on('exit', (code) => gone(`exit code ${code}`));
    // An answer that could not be read cannot be told from the others: this thread is let go.
    worker.on('messageerror', (err: Error) => gone(`an answer could not be read: ${err.message}`, worker.terminate()));
    this.#worker = worker;
    return worker;
  }

  #answer(m: FromResultsThread): void {
    const p = this.#settle(m.id);
    if (!p) return;
    if ('image' in m && p.kind === 'download') {
      if (m.bytes) p.keep?.remember(m.image.path, Buffer.from(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength));
      p.resolve(m.image);
    } else if ('uploaded' in m && p.kind === 'upload') p.resolve(m.uploaded);
    else if (!('error' in m)) p.reject(new Error(`the results thread answered a ${p.kind} with something else`));
    else if (m.error.aborted) p.reject(p.signal?.aborted ? p.signal.reason : failure(p.kind, stopping()));
    else p.reject(rebuilt(m.error));
  }

  #settle(id: number): Pending | undefined {
    const p = this.#pending.get(id);
    if (!p) return undefined;
    this.#pending.delete(id);
    if (p.onAbort) p.signal?.removeEventListener('abort', p.onAbort);
    if (this.#pending.size === 0) {
      this.#worker?.unref();
      this.#drained?.();
    }
    return p;
  }

  /**
   * Fails every pending download and upload, their thread gone (or, with `stopped`, going), once
   * the temp files it was writing for the downloads are removed: a stopped thread cleans nothing
   * up. They leave `#pending` at once, so requests made meanwhile are counted for the next thread alone.
   */
  async #lose(err: Error, stopped?: Promise<unknown>): Promise<void> {
    const lost = [...this.#pending.keys()].flatMap((id) => this.#settle(id) ?? []);
    const cleanup = (async () => {
      await stopped?.catch(() => undefined);
      await Promise.all(lost.flatMap((p) => (p.kind === 'download' ? [rm(p.tempPath, { force: true }).catch(() => undefined)] : [])));
      for (const p of lost) p.reject(failure(p.kind, err));
    })();
    this.#cleanups.add(cleanup);
    await cleanup;
    this.#cleanups.delete(cleanup);
  }
}

/** What a request that did not finish fails with: an upload's failure is not a download's (the same words, without the class). */
function failure(kind: Pending['kind'], err: Error): Error {
  return kind === 'upload' && err instanceof ResultDownloadError ? new Error(err.message) : err;
}

/** An error crossed over from the thread, as the main thread would have thrown it. */
function rebuilt(e: CrossedError): Error {
  const plain = (x: { name: string; message: string; code?: string | undefined }) => Object.assign(new Error(x.message), { name: x.name }, x.code !== undefined && { code: x.code });
  const err = e.download ? new ResultDownloadError(e.message) : plain(e);
  if (e.cause) err.cause = plain(e.cause);
  return err;
}

/** An error about to cross to the main thread. */
export function crossed(err: unknown, aborted: boolean): CrossedError {
  const codeOf = (x: unknown) => (typeof (x as { code?: unknown })?.code === 'string' ? (x as { code: string }).code : undefined);
  const cause = err instanceof Error ? err.cause : undefined;
  return {
    name: err instanceof Error ? err.name : 'Error',
    message: err instanceof Error ? err.message : String(err),
    code: codeOf(err),
    cause: cause instanceof Error ? { name: cause.name, message: cause.message, code: codeOf(cause) } : undefined,
    download: err instanceof ResultDownloadError,
    aborted,
  };
}
