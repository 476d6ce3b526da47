/**
 * The results thread's program (results-worker.ts starts it): runs downloadResult for each
 * download request and answers with the JobImage, and with the body's bytes when asked to keep
 * them (transferred: moved to the main thread, not copied); runs postFile
 * (src/util/file-upload.ts) for each upload request and answers with the status and text. A
 * failure answers with its message; an abort request stops the download, which removes its files
 * as on the main thread, or the upload.
 */
import { stat } from 'node:fs/promises';
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { ResultDownloadError } from './errors.ts';
import { RecentResults } from './recent-results.ts';
import { downloadResult } from './results.ts';
import { postFile } from '../util/file-upload.ts';
import { crossed, RESULTS_THREAD_NICE, type FromResultsThread, type ToResultsThread } from './results-worker.ts';

const port = parentPort;
if (!port) throw new Error('results-thread.ts runs as a worker thread (results-worker.ts)');
// Below the main thread, so a download waits rather than an acknowledgement when the cores are
// busy. On Linux a nice value belongs to a thread (setpriority(2), NOTES: "the nice value is a
// per-thread attribute"); elsewhere it would lower the whole process, so it is left alone there.
// libuv's thread pool (the whole process's file system work) is made by the first thread to use
// it, and a new thread takes the nice value of the thread that made it: use the pool once first, so
// it is never made at this thread's lower priority.
await stat(import.meta.dirname).catch(() => undefined);
if (process.platform === 'linux') setPriority(RESULTS_THREAD_NICE);

/** The bodies being copied here share RecentResults' budget; each is handed over as soon as it is whole. */
const copies = new RecentResults();
const running = new Map<number, AbortController>();

port.on('message', (m: ToResultsThread) => {
  if ('abort' in m) running.get(m.id)?.abort();
  else if ('upload' in m) void upload(m);
  else void download(m);
});

async function upload(m: Extract<ToResultsThread, { upload: unknown }>): Promise<void> {
  const abort = new AbortController();
  running.set(m.id, abort);
  let answer: FromResultsThread;
  try {
    answer = { id: m.id, uploaded: await postFile(m.upload, { signal: abort.signal }) };
  } catch (err) {
    answer = { id: m.id, error: crossed(err, abort.signal.aborted) };
  } finally {
    running.delete(m.id);
  }
  port!.postMessage(answer);
}

async function download(m: Extract<ToResultsThread, { url: string }>): Promise<void> {
  const abort = new AbortController();
  running.set(m.id, abort);
  let answer: FromResultsThread;
  try {
    const image = await downloadResult(m.url, m.destPath, { signal: abort.signal, tempPath: m.tempPath, ...(m.keep && { keep: copies }) });
    // In memory of its own (RecentResults.allocate): transferred below, moved rather than copied.
    const bytes = m.keep ? copies.take(image.path) : undefined;
    answer = { id: m.id, image, ...(bytes && { bytes }) };
  } catch (err) {
    answer = { id: m.id, error: crossed(err, abort.signal.aborted) };
  } finally {
    running.delete(m.id);
  }
  try {
    port!.postMessage(answer, 'bytes' in answer && answer.bytes ? [answer.bytes.buffer as ArrayBuffer] : []);
  } catch (err) {
    // Not sendable as it is (never expected): the download still ends, reported as failed.
    port!.postMessage({ id: m.id, error: crossed(new ResultDownloadError(`could not hand the result over: ${String(err)}`), false) } satisfies FromResultsThread);
  }
}
