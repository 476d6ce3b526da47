/**
 * Downloads a result image once, streaming it to disk with bounded memory: the body is counted
 * and written in 1 MiB batches into a temp file next to the destination, renamed into place only
 * when complete and verified (PNG/JPEG/WEBP by content, within the size cap). Per download, one
 * batch and the first 64 KiB (for sniffing) are in memory at once, or, for a result handed to the
 * deliverer, its whole body within the budget of recent-results.ts. Idempotent attempts are
 * retried with the shared policy (src/providers/retry.ts).
 *
 * `downloadToFile` is the shared streaming primitive; references.ts uses it too.
 */
import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, extname } from 'node:path';
import { request, type Dispatcher } from 'undici';
import { withRetry, type RetryOptions } from '../providers/retry.ts';
import type { RequestGate } from '../providers/types.ts';
import { ResultDownloadError } from './errors.ts';
import type { JobImage } from './job.ts';
import { EXTENSION_BY_MIME, IMAGE_MIMES, sniffFile, sniffImage, SNIFF_MIN_BYTES } from './image-sniff.ts';
import { checkUrlAllowed } from './net-guard.ts';
import type { RecentResults } from './recent-results.ts';
import { MiB } from '../util/units.ts';

/**
 * Far above any documented output (a 4K PNG is "several MB"), yet above the worst case a faithful
 * output can reach: 4K RGBA noise, ~17 Mpx × 4 bytes ≈ 68 MB, past a 64 MiB cap. It only guards
 * the disk against an endless stream; memory stays bounded whatever the size.
 */
export const DEFAULT_RESULT_MAX_BYTES = 256 * MiB;
const HEAD_CAPTURE_BYTES = 64 * 1024;
/** Bytes of a body written to its file at once: a 1K PNG (~0.5–2 MB) in one or two writes, memory still bounded. */
const WRITE_BATCH_BYTES = MiB;
/** The accepted image types first, anything else last (the content is sniffed anyway). */
const ACCEPT_IMAGES = `${IMAGE_MIMES.join(',')};q=0.9,*/*;q=0.1`;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/** HTTP answers worth repeating for an idempotent GET. */
const RETRYABLE_STATUSES = new Set([408, 425, 429, 500, 502, 503, 504]);

export type DownloadProblemKind = 'too_large' | 'not_an_image' | 'http_status' | 'too_many_redirects' | 'bad_redirect';

/** A download that failed for a reason other than the network. */
export class DownloadProblem extends Error {
  readonly kind: DownloadProblemKind;
  readonly status: number | undefined;
  /**
   * For retryable HTTP statuses, undici's own status-error code, which the shared retry policy
   * classifies as a transport failure (retried only for idempotent calls).
   */
  readonly code: string;
  constructor(kind: DownloadProblemKind, message: string, status?: number) {
    super(message);
    this.name = 'DownloadProblem';
    this.kind = kind;
    this.status = status;
    this.code = kind === 'http_status' && status !== undefined && RETRYABLE_STATUSES.has(status) ? 'UND_ERR_RESPONSE_STATUS_CODE' : `DOWNLOAD_${kind.toUpperCase()}`;
  }
}

export interface DownloadToFileOptions {
  dispatcher?: Dispatcher | undefined;
  maxBytes: number;
  signal?: AbortSignal | undefined;
  /** Stop as soon as the first bytes show the body is not PNG/JPEG/WEBP. */
  requireImage?: boolean;
  /** Redirects to follow (each Location re-checked with `allowHosts` when given). Default 3. */
  maxRedirects?: number;
  /** When set, every redirect target must pass checkUrlAllowed(url, allowHosts). */
  allowHosts?: readonly string[] | undefined;
  headersTimeoutMs?: number;
  bodyTimeoutMs?: number;
  /**
   * Also return the whole body (`kept`) when its declared size can be reserved here: the bytes are
   * copied into one buffer as they arrive; a body not kept after all releases its reservation.
   */
  keep?: Pick<RecentResults, 'reserve' | 'release' | 'allocate'> | undefined;
}

export interface DownloadedFile {
  bytes: number;
  /** The first bytes (up to 64 KiB), for sniffing. */
  head: Uint8Array;
  finalUrl: string;
  /** The whole body, when asked for (`keep`), with the reservation it now holds: commit or release it. */
  kept?: { bytes: Buffer; reserved: number };
}

/** GETs `url` into `path` (created/overwritten), aborting the stream past `maxBytes`. Removes `path` on failure. */
export async function downloadToFile(url: string, path: string, opts: DownloadToFileOptions): Promise<DownloadedFile> {
  const maxRedirects = opts.maxRedirects ?? 3;
  let current = url;
  for (let hop = 0; ; hop++) {
    const res = await request(current, {
      method: 'GET',
      headers: { accept: ACCEPT_IMAGES, 'user-agent': 'imagine-bot' },
      ...(opts.dispatcher ? { dispatcher: opts.dispatcher } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      headersTimeout: opts.headersTimeoutMs ?? 30_000,
      bodyTimeout: opts.bodyTimeoutMs ?? 30_000,
    });
    if (REDIRECT_STATUSES.has(res.statusCode)) {
      await res.body.dump().catch(() => undefined);
      const location = res.headers.location;
      const target = Array.isArray(location) ? location[0] : location;
      if (!target) throw new DownloadProblem('bad_redirect', `HTTP ${res.statusCode} without Location`, res.statusCode);
      if (hop >= maxRedirects) throw new DownloadProblem('too_many_redirects', `more than ${maxRedirects} redirects`);
      current = new URL(target, current).toString();
      if (opts.allowHosts) checkUrlAllowed(current, opts.allowHosts);
      continue;
    }
    if (res.statusCode < 200 || res.statusCode >= 300) {
      await res.body.dump().catch(() => undefined);
      throw new DownloadProblem('http_status', `HTTP ${res.statusCode}`, res.statusCode);
    }
    const declared = Number(res.headers['content-length']);
    if (Number.isFinite(declared) && declared > opts.maxBytes) {
      res.body.destroy();
      throw new DownloadProblem('too_large', `${declared} bytes declared, limit ${opts.maxBytes}`);
    }
    let total = 0;
    const headChunks: Buffer[] = [];
    let headLen = 0;
    let checked = !opts.requireImage;
    const checkHead = (): void => {
      checked = true;
      if (!sniffImage(Buffer.concat(headChunks))) throw new DownloadProblem('not_an_image', 'content is not PNG, JPEG or WEBP');
    };
    // The body goes to the file in batches of WRITE_BATCH_BYTES, one write each: a few calls into
    // libuv's thread pool per result instead of one per 16–64 KiB chunk, and no stream objects in
    // between; reading waits while a batch is written. A body the caller keeps (its declared size
    // reserved with `opts.keep`) is copied into one buffer instead and written once at the end.
    const reserved = opts.keep && Number.isFinite(declared) && declared > 0 && opts.keep.reserve(declared) ? declared : 0;
    let whole = reserved ? opts.keep!.allocate(reserved) : undefined;
    let kept: Buffer | undefined;
    let file: FileHandle | undefined;
    try {
      file = await open(path, 'w');
      const handle = file;
      let batch: Buffer[] = [];
      let batchBytes = 0;
      const flush = async () => {
        const { bytesWritten } = await handle.writev(batch);
        if (bytesWritten !== batchBytes) throw new Error(`short write to ${path}: ${bytesWritten} of ${batchBytes} bytes`);
        batch = [];
        batchBytes = 0;
      };
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        const offset = total;
        total += chunk.length;
        if (total > opts.maxBytes) throw new DownloadProblem('too_large', `more than ${opts.maxBytes} bytes`);
        if (headLen < HEAD_CAPTURE_BYTES) {
          const part = chunk.subarray(0, HEAD_CAPTURE_BYTES - headLen);
          headChunks.push(Buffer.from(part));
          headLen += part.length;
        }
        if (!checked && headLen >= SNIFF_MIN_BYTES) checkHead();
        if (whole && total <= whole.length) {
          chunk.copy(whole, offset);
          continue;
        }
        if (whole) {
          // Longer than declared: not kept after all; what was copied goes first.
          batch.push(whole.subarray(0, offset));
          batchBytes += offset;
          whole = undefined;
        }
        batch.push(chunk);
        batchBytes += chunk.length;
        if (batchBytes >= WRITE_BATCH_BYTES) await flush();
      }
      if (!checked) checkHead();
      if (whole) {
        kept = whole.subarray(0, total);
        batch.push(kept);
        batchBytes += total;
      }
      if (batchBytes > 0) await flush();
      file = undefined;
      await handle.close();
    } catch (err) {
      kept = undefined; // not handed over: the reservation is released below
      res.body.destroy();
      await file?.close().catch(() => undefined);
      await rm(path, { force: true }).catch(() => undefined);
      throw err;
    } finally {
      // Kept: the reservation goes with the bytes to the caller (RecentResults.commit or release).
      if (reserved && !kept) opts.keep!.release(reserved);
    }
    return { bytes: total, head: Buffer.concat(headChunks), finalUrl: current, ...(kept && { kept: { bytes: kept, reserved } }) };
  }
}

export interface DownloadResultOptions {
  dispatcher?: Dispatcher;
  /** Default DEFAULT_RESULT_MAX_BYTES. */
  maxBytes?: number;
  signal?: AbortSignal | undefined;
  /**
   * Called before each attempt. The engine passes none: output URLs are CDN links fetched without
   * the API key, and docs/providers.md counts the 20 requests / 10 s per key only for the API
   * (creates and polls). A deployment whose provider counted downloads too would pass the key's gate.
   */
  gate?: RequestGate;
  /** Where the bytes just written are handed to the deliverer (recent-results.ts); none: not kept. */
  keep?: RecentResults | undefined;
  /** Overrides for the shared retry policy (tests pass a fast sleep). */
  retry?: Partial<Omit<RetryOptions, 'kind' | 'signal'>>;
  /** The temp file the body is written to before it is renamed into place; default tempPathFor(destPath). */
  tempPath?: string;
}

/** A temp file of its own beside `destPath`: another download of the same result (a takeover) has its own. */
export const tempPathFor = (destPath: string): string => `${destPath}.${randomBytes(6).toString('hex')}.part`;

/** A result download as the engine asks for it (jobs/tasks.ts): downloadResult's contract, on whichever thread runs it (results-worker.ts). */
export type DownloadResultFn = (url: string, destPath: string, opts: Pick<DownloadResultOptions, 'signal' | 'keep'>) => Promise<JobImage>;

/**
 * Downloads the result at `url` to `destPath` with the extension of what the content is (PNG,
 * JPEG or WEBP; replacing any extension `destPath` has), and describes it (`path`: where it is);
 * throws ResultDownloadError.
 */
export async function downloadResult(url: string, destPath: string, opts: DownloadResultOptions = {}): Promise<JobImage> {
  const maxBytes = opts.maxBytes ?? DEFAULT_RESULT_MAX_BYTES;
  await mkdir(dirname(destPath), { recursive: true });
  const tmp = opts.tempPath ?? tempPathFor(destPath);
  let file: DownloadedFile | undefined;
  try {
    file = await withRetry(
      async () => {
        await opts.gate?.('poll', opts.signal);
        return downloadToFile(url, tmp, { dispatcher: opts.dispatcher, maxBytes, signal: opts.signal, requireImage: true, keep: opts.keep });
      },
      { ...opts.retry, kind: 'idempotent', signal: opts.signal },
    );
    let sniffed = sniffImage(file.head);
    // A JPEG's frame header past the first 64 KiB: in the body kept in hand, else in the file.
    if (sniffed && sniffed.width === undefined) sniffed = (file.kept ? sniffImage(file.kept.bytes) : await sniffFile(tmp)) ?? sniffed;
    if (!sniffed) throw new DownloadProblem('not_an_image', 'content is not PNG, JPEG or WEBP');
    // Named after its real content, whatever the URL or the caller said.
    const path = `${destPath.slice(0, destPath.length - extname(destPath).length)}.${EXTENSION_BY_MIME[sniffed.mime]}`;
    await rename(tmp, path);
    if (file.kept) opts.keep?.commit(path, file.kept.bytes, file.kept.reserved);
    return {
      path,
      sourceUrl: url,
      mime: sniffed.mime,
      bytes: file.bytes,
      width: sniffed.width ?? 0,
      height: sniffed.height ?? 0,
    };
  } catch (err) {
    if (file?.kept) opts.keep?.release(file.kept.reserved);
    await rm(tmp, { force: true });
    if (opts.signal?.aborted && err === opts.signal.reason) throw err;
    if (err instanceof ResultDownloadError) throw err;
    const reason = err instanceof Error ? err.message : String(err);
    const wrapped = new ResultDownloadError(`result download from ${new URL(url).host} failed: ${reason}`);
    wrapped.cause = err;
    throw wrapped;
  }
}
