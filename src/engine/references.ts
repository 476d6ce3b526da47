/**
 * Reference images: fetch and check what the user gave (count ≤ the model's maximum, ≤ 20 MB,
 * JPEG/PNG/WEBP by content), then turn them into what the provider takes. Every user-given URL
 * goes through the SSRF guard (net-guard.ts): checked up front, re-checked on each redirect, and
 * the connection itself only reaches public addresses unless FETCH_ALLOW_HOSTS says otherwise.
 *
 * Providers (their ProviderTraits.inlineReferences): one that takes inline images (RunBlob) gets
 * base64 data URLs. One that takes URLs only (Runbase) gets the original link when it is public,
 * else a short-lived link on the bot's own HTTP server (ReferenceHost, needs PUBLIC_URL), else a
 * ReferenceError that names the fix.
 *
 * Size: users may give up to 20 MiB (MAX_REFERENCE_BYTES, the lenient reading of "20 MB"), but
 * a provider's inline limit may be lower (RunBlob may mean 20,000,000 bytes): an inline image
 * above it is re-encoded (same pixels, high-quality JPEG, or WEBP when it has transparency;
 * downscaled only if that is not enough) so the provider never receives an image it could refuse.
 */
import { createReadStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import type { Dispatcher } from 'undici';
import type { ProviderReference, ProviderTraits } from '../providers/types.ts';
import { ReferenceError } from './errors.ts';
import { EXTENSION_BY_MIME, sniffFile, sniffImage, type ImageMime } from './image-sniff.ts';
import { checkUrlAllowed, findForbiddenAddress } from './net-guard.ts';
import type { ReferenceHost } from './reference-host.ts';
import { DownloadProblem, downloadToFile } from './results.ts';
import { MAX_REFERENCE_BYTES, type ReferenceInput } from './request.ts';
import { formatMiB } from '../util/units.ts';

export interface PreparedReference {
  /** 0-based position in the request (ReferenceError uses it). */
  index: number;
  /** The checked image on local disk. */
  path: string;
  mime: string;
  bytes: number;
  name?: string;
  /** The URL the user gave (url references only). */
  sourceUrl?: string;
}

export interface FetchReferencesOptions {
  /** Where downloads are written (created if missing). */
  dir: string;
  /** The model's maximum number of references. */
  maxCount: number;
  /** A guarded dispatcher (createGuardedDispatcher). */
  dispatcher: Dispatcher;
  /** FETCH_ALLOW_HOSTS. */
  allowHosts: readonly string[];
  signal?: AbortSignal;
  /** Per image. Default 20 MB (MAX_REFERENCE_BYTES). */
  maxBytes?: number;
  /** Per download, headers and body included. Default 30 s. */
  timeoutMs?: number;
}

/**
 * Checks and fetches every reference (downloads run in parallel). Throws the ReferenceError of
 * the first reference that fails (lowest index), after removing the files it downloaded.
 */
export async function fetchReferences(refs: ReferenceInput[], opts: FetchReferencesOptions): Promise<PreparedReference[]> {
  if (refs.length > opts.maxCount) {
    throw new ReferenceError(opts.maxCount, 'too_many', `this model takes at most ${opts.maxCount}`);
  }
  if (refs.length === 0) return [];
  const maxBytes = opts.maxBytes ?? MAX_REFERENCE_BYTES;
  // Cheap checks first: a forbidden URL fails before anything is downloaded.
  refs.forEach((ref, index) => {
    if (ref.kind !== 'url') return;
    try {
      checkUrlAllowed(ref.url, opts.allowHosts);
    } catch {
      throw new ReferenceError(index, 'forbidden_address', '', ref.name);
    }
  });
  await mkdir(opts.dir, { recursive: true });
  const siblings = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, siblings.signal]) : siblings.signal;
  const written: string[] = [];
  let firstError: unknown;
  const results = await Promise.allSettled(
    refs.map((ref, index) =>
      prepareOne(ref, index, { ...opts, maxBytes, signal, written }).catch((err: unknown) => {
        // One bad image fails the request: remember the first failure, stop the other downloads
        // (whose abort errors must not be reported instead).
        if (firstError === undefined) firstError = err;
        siblings.abort();
        throw err;
      }),
    ),
  );
  if (opts.signal?.aborted || firstError !== undefined) {
    await Promise.all(written.map((p) => rm(p, { force: true })));
    throw opts.signal?.aborted ? opts.signal.reason : firstError;
  }
  return results.map((r) => (r as PromiseFulfilledResult<PreparedReference>).value);
}

interface PrepareContext extends FetchReferencesOptions {
  maxBytes: number;
  signal: AbortSignal;
  written: string[];
}

async function prepareOne(ref: ReferenceInput, index: number, ctx: PrepareContext): Promise<PreparedReference> {
  const name = ref.name;
  const base = { index, ...(name !== undefined ? { name } : {}) };
  if (ref.kind === 'file') return { ...base, ...(await checkLocal(ref.path, index, name, ctx.maxBytes)) };
  if (ref.localPath) {
    const local = await checkLocal(ref.localPath, index, name, ctx.maxBytes).catch((err: unknown) => {
      if ((err as { code?: unknown }).code === 'ENOENT') return undefined; // copy gone: download instead
      throw err;
    });
    if (local) return { ...base, ...local, sourceUrl: ref.url };
  }
  return { ...base, ...(await download(ref.url, index, name, ctx)), sourceUrl: ref.url };
}

async function checkLocal(path: string, index: number, name: string | undefined, maxBytes: number) {
  const info = await stat(path); // ENOENT propagates
  if (info.size > maxBytes) throw new ReferenceError(index, 'too_large', formatMiB(info.size), name);
  const sniffed = await sniffFile(path);
  if (!sniffed) throw new ReferenceError(index, 'not_an_image', '', name);
  return { path, mime: sniffed.mime, bytes: info.size };
}

async function download(url: string, index: number, name: string | undefined, ctx: PrepareContext) {
  const part = join(ctx.dir, `ref-${index}-${randomBytes(8).toString('hex')}.part`);
  const timeout = AbortSignal.timeout(ctx.timeoutMs ?? 30_000);
  const signal = AbortSignal.any([ctx.signal, timeout]);
  ctx.written.push(part);
  let file;
  try {
    file = await downloadToFile(url, part, {
      dispatcher: ctx.dispatcher,
      maxBytes: ctx.maxBytes,
      signal,
      requireImage: true,
      allowHosts: ctx.allowHosts,
    });
  } catch (err) {
    throw toReferenceError(err, index, name, timeout.aborted, ctx.maxBytes);
  }
  const sniffed = sniffImage(file.head);
  if (!sniffed) throw new ReferenceError(index, 'not_an_image', '', name);
  const path = part.replace(/\.part$/, `.${EXTENSION_BY_MIME[sniffed.mime]}`);
  await rename(part, path);
  ctx.written.push(path);
  return { path, mime: sniffed.mime, bytes: file.bytes };
}

function toReferenceError(err: unknown, index: number, name: string | undefined, timedOut: boolean, maxBytes: number): ReferenceError {
  if (err instanceof ReferenceError) return err;
  if (findForbiddenAddress(err)) return new ReferenceError(index, 'forbidden_address', '', name);
  if (err instanceof DownloadProblem) {
    if (err.kind === 'too_large') return new ReferenceError(index, 'too_large', `over ${formatMiB(maxBytes)}`, name);
    if (err.kind === 'not_an_image') return new ReferenceError(index, 'not_an_image', '', name);
    if (err.kind === 'http_status') return new ReferenceError(index, 'unreachable', `HTTP ${err.status}`, name);
    return new ReferenceError(index, 'unreachable', 'too many redirects', name);
  }
  if (timedOut) return new ReferenceError(index, 'unreachable', 'timed out', name);
  return new ReferenceError(index, 'unreachable', 'network error', name);
}

/** Reads a file as a base64 data URL, encoding chunk by chunk (chunks cut on 3-byte boundaries). */
export async function fileToDataUrl(path: string, mime: string): Promise<string> {
  const parts: string[] = [`data:${mime};base64,`];
  let carry = Buffer.alloc(0);
  for await (const chunk of createReadStream(path, { highWaterMark: 3 * 64 * 1024 })) {
    const buf = carry.length ? Buffer.concat([carry, chunk as Buffer]) : (chunk as Buffer);
    const usable = buf.length - (buf.length % 3);
    parts.push(buf.subarray(0, usable).toString('base64'));
    carry = Buffer.from(buf.subarray(usable));
  }
  if (carry.length) parts.push(carry.toString('base64'));
  return parts.join('');
}

/** Is `url` something the provider can fetch by itself: public https (or allow-listed)? */
export function isFetchableByProvider(url: string, allowHosts: readonly string[]): boolean {
  try {
    checkUrlAllowed(url, allowHosts);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether a provider that only takes links (no traits.inlineReferences) can get every one of
 * these references without the bot's own server: each is a link the provider can fetch itself.
 */
export function reachableByLink(refs: readonly ReferenceInput[], allowHosts: readonly string[]): boolean {
  return refs.every((r) => r.kind === 'url' && isFetchableByProvider(r.url, allowHosts));
}

/**
 * What the provider receives for each prepared reference. Inline (`inline` set, the provider's
 * traits.inlineReferences): a data URL of the checked file, fitted under `inline.maxBytes`. URLs
 * only: the user's original URL when the provider can fetch it, else a short-lived URL on `host`,
 * else ReferenceError 'needs_public_url'.
 */
export async function toProviderReferences(
  prepared: PreparedReference[],
  inline: ProviderTraits['inlineReferences'],
  host: ReferenceHost | undefined,
  opts: { allowHosts?: readonly string[] } = {},
): Promise<ProviderReference[]> {
  const out: ProviderReference[] = [];
  for (const ref of prepared) {
    if (inline) {
      if (ref.bytes <= inline.maxBytes) {
        out.push({ kind: 'data', dataUrl: await fileToDataUrl(ref.path, ref.mime) });
        continue;
      }
      const fitted = await fitUnderBytes(ref, inline.maxBytes);
      try {
        out.push({ kind: 'data', dataUrl: await fileToDataUrl(fitted.path, fitted.mime) });
      } finally {
        await rm(fitted.path, { force: true });
      }
    } else if (ref.sourceUrl && isFetchableByProvider(ref.sourceUrl, opts.allowHosts ?? [])) {
      out.push({ kind: 'url', url: ref.sourceUrl });
    } else if (host) {
      out.push({ kind: 'url', url: host.publish(ref.path, ref.mime) });
    } else {
      throw new ReferenceError(ref.index, 'needs_public_url', '', ref.name);
    }
  }
  return out;
}

/** WEBP's largest side. */
const WEBP_MAX_SIDE = 16_383;
const FIT_QUALITY = 90;
/** Each further attempt scales the image by this much. */
const FIT_SCALE_STEP = 0.75;
const FIT_ATTEMPTS = 6;

/**
 * A copy of `ref` of at most `maxBytes`, in a temporary file the caller removes (never next to a
 * user's own file): re-encoded at high quality (JPEG, or WEBP to keep transparency), downscaled
 * step by step only while still too large. EXIF orientation is applied to the pixels, since
 * re-encoding drops the metadata.
 */
export async function fitUnderBytes(ref: PreparedReference, maxBytes: number): Promise<{ path: string; mime: string; bytes: number }> {
  try {
    return await reencodeUnder(ref, maxBytes);
  } catch (err) {
    // sharp refuses some inputs (e.g. past its pixel limit): for the user it is still a too-large image.
    if (err instanceof ReferenceError) throw err;
    throw Object.assign(new ReferenceError(ref.index, 'too_large', formatMiB(ref.bytes), ref.name), { cause: err });
  }
}

async function reencodeUnder(ref: PreparedReference, maxBytes: number): Promise<{ path: string; mime: string; bytes: number }> {
  const meta = await sharp(ref.path).metadata();
  const alpha = meta.hasAlpha === true;
  const mime: ImageMime = alpha ? 'image/webp' : 'image/jpeg';
  const ext = EXTENSION_BY_MIME[mime];
  const width = meta.autoOrient?.width ?? meta.width;
  const height = meta.autoOrient?.height ?? meta.height;
  let scale = alpha ? Math.min(1, WEBP_MAX_SIDE / Math.max(width, height)) : 1;
  for (let attempt = 0; attempt < FIT_ATTEMPTS; attempt++, scale *= FIT_SCALE_STEP) {
    const path = join(tmpdir(), `imagine-ref-${randomBytes(8).toString('hex')}.${ext}`);
    let image = sharp(ref.path).rotate();
    if (scale < 1) image = image.resize({ width: Math.max(1, Math.floor(width * scale)), height: Math.max(1, Math.floor(height * scale)), fit: 'fill' });
    let size: number;
    try {
      ({ size } = alpha ? await image.webp({ quality: FIT_QUALITY }).toFile(path) : await image.jpeg({ quality: FIT_QUALITY }).toFile(path));
    } catch (err) {
      await rm(path, { force: true });
      throw err;
    }
    if (size <= maxBytes) return { path, mime, bytes: size };
    await rm(path, { force: true });
  }
  throw new ReferenceError(ref.index, 'too_large', formatMiB(ref.bytes), ref.name);
}
