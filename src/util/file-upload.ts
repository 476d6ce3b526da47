/**
 * POSTing one file as multipart/form-data (a single `file` field, the shape Slack's upload URLs
 * take: https://docs.slack.dev/reference/methods/files.getUploadURLExternal), streamed from disk
 * so a 20 MB result never sits in memory, or from bytes the caller has. Neutral about who asks:
 * the Slack deliverer runs it on the results thread (src/engine/results-thread.ts) or, without
 * one, on the event loop; the answer's status and text come back for the caller to judge.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { request, type Dispatcher } from 'undici';
import { MiB } from './units.ts';
import { Multipart } from './multipart.ts';

/** Read from disk in pieces of this size: a 1K result in one read, not one per 64 KiB. */
const UPLOAD_READ_BYTES = MiB;

/** One file to POST; plain data, so it crosses to a worker thread as it is. */
export interface FileUpload {
  url: string;
  /** The file on disk (read when `bytes` is not given). */
  path: string;
  /** The file's size, when the caller knows it (else the file is stat'ed). */
  size?: number | undefined;
  filename: string;
  mime: string;
  /** Extra request headers (an authorization the caller chose to send). */
  headers?: Record<string, string> | undefined;
  /** Bounds the wait for the answer's headers and for each piece of its body. */
  timeoutMs: number;
}

/** What the server answered. */
export interface FileUploadAnswer {
  status: number;
  /** The answer's body as text (the caller quotes it in an error). */
  text: string;
}

/** Runs a FileUpload somewhere (the results thread, or postFile here). */
export type FileUploader = (upload: FileUpload) => Promise<FileUploadAnswer>;

/** POSTs the file; `bytes`, when the caller has them, are sent as they are and the file is not read. */
export async function postFile(
  upload: FileUpload,
  opts: { bytes?: Buffer | undefined; dispatcher?: Dispatcher | undefined; signal?: AbortSignal | undefined } = {},
): Promise<FileUploadAnswer> {
  const size = opts.bytes?.length ?? upload.size ?? (await stat(upload.path)).size;
  const form = new Multipart();
  const head = form.head({ name: 'file', filename: upload.filename, contentType: upload.mime });
  const tail = form.tail();
  // `end` (the size is known): a read asks for what is left, not a whole piece, so a 500 KiB file
  // gets a 500 KiB buffer, and no further read and buffer to find the end of the file.
  async function* parts() {
    yield head;
    if (size > 0) yield* createReadStream(upload.path, { highWaterMark: UPLOAD_READ_BYTES, start: 0, end: size - 1 });
    yield tail;
  }
  // In memory: the three pieces as they are, not copied into one buffer.
  const body = Readable.from(opts.bytes ? [head, opts.bytes, tail] : parts());
  const res = await request(upload.url, {
    method: 'POST',
    headers: { 'content-type': form.contentType, 'content-length': String(head.length + size + tail.length), ...upload.headers },
    body,
    headersTimeout: upload.timeoutMs,
    bodyTimeout: upload.timeoutMs,
    ...(opts.dispatcher ? { dispatcher: opts.dispatcher } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return { status: res.statusCode, text: await res.body.text() };
}
