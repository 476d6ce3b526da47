/**
 * Slack files are private (docs/slack.md "Taking input"): reference images picked in the
 * modal or found on a message are downloaded from `url_private` with the bot token, streamed to
 * a temporary directory under DATA_DIR with a size cap, and handed to the engine as
 * `{ kind: 'file', path }`. No public link is ever created. The token is only ever sent to
 * Slack's own file hosts (or the configured SLACK_API_URL's host, for tests).
 */
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { request, type Dispatcher } from 'undici';
import { ReferenceError } from '../../engine/errors.ts';
import { EXTENSION_BY_MIME, type ImageMime } from '../../engine/image-sniff.ts';
import { MAX_REFERENCE_BYTES, type ReferenceInput } from '../../engine/request.ts';
import type { Config } from '../../config.ts';

/** A Slack file to use as a reference: downloaded later with the bot token. */
export interface SlackFileRef {
  id: string;
  name?: string;
  /** url_private (absent when it did not fit in private_metadata: fetched with files.info). */
  url?: string;
}

/**
 * The reference image types, by the names Slack files go by (`filetype`, a name's extension):
 * each type's extension and its media subtype (jpg, jpeg, png, webp), derived from the engine's
 * list. The engine checks the bytes anyway.
 */
const MIME_BY_FILETYPE: ReadonlyMap<string, ImageMime> = new Map(
  (Object.keys(EXTENSION_BY_MIME) as ImageMime[])
    .sort()
    .flatMap((mime) => [EXTENSION_BY_MIME[mime], mime.slice('image/'.length)].map((type): [string, ImageMime] => [type, mime])),
);

/** What file_input offers: https://docs.slack.dev/reference/block-kit/block-elements/file-input-element (`filetypes`). */
export const REFERENCE_FILETYPES: readonly string[] = [...MIME_BY_FILETYPE.keys()];

/** A Slack file's image type: its `mimetype`, else its `filetype` or name's extension; undefined when not one the bot takes. */
export function referenceMime(f: { mimetype?: string | undefined; filetype?: string | undefined; name?: string | undefined }): ImageMime | undefined {
  if (f.mimetype) return Object.hasOwn(EXTENSION_BY_MIME, f.mimetype) ? (f.mimetype as ImageMime) : undefined;
  return MIME_BY_FILETYPE.get((f.filetype ?? f.name?.split('.').pop() ?? '').toLowerCase());
}

export const DOWNLOAD_TIMEOUT_MS = 30_000;

/** Whether `url` is a place where Slack serves private files (so the bot token may go there). */
export function isSlackFileUrl(url: string, apiUrl: string): boolean {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  const api = new URL(apiUrl);
  // The configured API's host (any port: a Slack-like server may serve files on another one).
  if (u.protocol === api.protocol && (u.hostname === api.hostname || (isLoopback(api.hostname) && isLoopback(u.hostname)))) return true;
  return u.protocol === 'https:' && (u.hostname === 'slack.com' || u.hostname.endsWith('.slack.com') || u.hostname.endsWith('.slack-edge.com'));
}

const isLoopback = (host: string) => host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);

/** Redirects followed when downloading a file (each hop must stay on Slack's hosts). */
const MAX_REDIRECTS = 3;
const REDIRECT = new Set([301, 302, 303, 307, 308]);
const NOT_VISIBLE = 'the bot may not see this file: is it shared in this channel?';

export interface DownloadOptions {
  token: string;
  apiUrl: string;
  /** Directory to create the files in (created if missing). */
  dir: string;
  maxBytes?: number;
  dispatcher?: Dispatcher;
  /** Resolves a file's url_private when the ref has none (files.info). */
  lookupUrl?: (fileId: string) => Promise<{ url: string; name?: string } | undefined>;
}

/** A safe local file name from a Slack file name. */
function localName(index: number, name: string | undefined): string {
  const cleaned = (name ?? 'image').replace(/[^A-Za-z0-9._-]+/g, '_').slice(-80);
  return `${index + 1}-${cleaned || 'image'}`;
}

/** Counts bytes through a stream and fails past the cap. */
function capBytes(max: number, onTooLarge: () => Error): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      if (seen > max) cb(onTooLarge());
      else cb(null, chunk);
    },
  });
}

/**
 * Downloads Slack files (in order) into a fresh directory under `opts.dir`. Returns the engine's
 * references and the directory (delete it once the job is done). Throws a ReferenceError naming
 * the image (1-based, as users count) that could not be fetched or was too large; on failure
 * the directory is removed.
 */
export async function downloadSlackFiles(
  refs: readonly SlackFileRef[],
  opts: DownloadOptions,
): Promise<{ references: ReferenceInput[]; dir: string | undefined }> {
  if (refs.length === 0) return { references: [], dir: undefined };
  const max = opts.maxBytes ?? MAX_REFERENCE_BYTES;
  const dir = join(opts.dir, randomUUID());
  await mkdir(dir, { recursive: true });
  try {
    const references: ReferenceInput[] = [];
    for (const [index, ref] of refs.entries()) {
      let url = ref.url;
      let name = ref.name;
      if (!url && opts.lookupUrl) {
        const found = await opts.lookupUrl(ref.id).catch(() => undefined);
        url = found?.url;
        name ??= found?.name;
      }
      if (!url) throw new ReferenceError(index, 'unreachable', 'Slack did not give its address', name);
      if (!isSlackFileUrl(url, opts.apiUrl)) throw new ReferenceError(index, 'unreachable', 'not a Slack file', name);
      let res: Dispatcher.ResponseData;
      let at: string = url;
      for (let hop = 0; ; hop++) {
        res = await request(at, {
          method: 'GET',
          headers: { authorization: `Bearer ${opts.token}` },
          headersTimeout: DOWNLOAD_TIMEOUT_MS,
          bodyTimeout: DOWNLOAD_TIMEOUT_MS,
          ...(opts.dispatcher ? { dispatcher: opts.dispatcher } : {}),
        }).catch((err: unknown) => {
          throw new ReferenceError(index, 'unreachable', err instanceof Error ? err.message : String(err), name);
        });
        if (!REDIRECT.has(res.statusCode) || hop === MAX_REDIRECTS) break;
        await res.body.dump().catch(() => undefined);
        // The token follows a redirect only to Slack's own hosts.
        const next: string | undefined = typeof res.headers.location === 'string' ? new URL(res.headers.location, at).toString() : undefined;
        if (!next || !isSlackFileUrl(next, opts.apiUrl)) throw new ReferenceError(index, 'unreachable', NOT_VISIBLE, name);
        at = next;
      }
      // Without access Slack answers 401/403, or a sign-in page.
      const html = String(res.headers['content-type'] ?? '').startsWith('text/html');
      if (res.statusCode !== 200 || html) {
        await res.body.dump().catch(() => undefined);
        const detail = res.statusCode === 403 || res.statusCode === 401 || REDIRECT.has(res.statusCode) || html ? NOT_VISIBLE : `HTTP ${res.statusCode}`;
        throw new ReferenceError(index, 'unreachable', detail, name);
      }
      const declared = Number(res.headers['content-length']);
      const tooLarge = () => new ReferenceError(index, 'too_large', '', name);
      if (Number.isFinite(declared) && declared > max) {
        await res.body.dump().catch(() => undefined);
        throw tooLarge();
      }
      const path = join(dir, localName(index, name));
      await pipeline(res.body, capBytes(max, tooLarge), createWriteStream(path));
      references.push({ kind: 'file', path, ...(name ? { name } : {}) });
    }
    return { references, dir };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Where downloaded Slack reference images live (kept as long as jobs, so Rerun can reuse them). */
export function slackRefsDir(config: Pick<Config, 'DATA_DIR'>): string {
  return `${config.DATA_DIR.replace(/\/+$/, '')}/slack-refs`;
}

/** Removes a download directory (best effort). */
export async function removeDownloads(dir: string | undefined): Promise<void> {
  if (dir) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
}
