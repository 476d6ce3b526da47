/**
 * Posting result images into Slack with the external upload flow (what files.uploadV2 does:
 * https://docs.slack.dev/reference/methods/files.getUploadURLExternal): files.getUploadURLExternal per
 * image, the bytes POSTed to its upload_url, then one files.completeUploadExternal sharing them
 * all into the channel (and thread), so they arrive as one message.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { request, type Dispatcher } from 'undici';
import { truncatePrompt } from '../../../commands/render.ts';
import { EXTENSION_BY_MIME } from '../../engine/image-sniff.ts';
import type { JobRecord } from '../../engine/job.ts';
import { resultContent } from '../../engine/recent-results.ts';
import type { imagesOf } from './blocks.ts';
import { MiB } from '../../util/units.ts';
import { background, inChannel, slackApiUrl, type SlackContext } from './context.ts';
import { isSlackFileUrl } from './files.ts';

export const UPLOAD_TIMEOUT_MS = 120_000;
const UPLOAD_READ_BYTES = MiB;

/**
 * Uploads a job's images as one message in the channel (and thread); returns their file ids. Each
 * image's bytes come from the download that just wrote them when still in hand (recent-results.ts),
 * else streamed from disk.
 */
export async function uploadImages(
  ctx: SlackContext,
  job: JobRecord,
  images: ReturnType<typeof imagesOf>,
  channel: string,
  threadTs: string | undefined,
): Promise<string[]> {
  const prompt = truncatePrompt(job.request.prompt, 200);
  const files = await Promise.all(
    images.map(async ({ index, image }) => {
      const filename = `imagine-${job.id.slice(0, 12)}-${index + 1}.${EXTENSION_BY_MIME[image.mime]}`;
      const content = await resultContent(ctx.recentResults, image.path);
      const target = await background(ctx, () => ctx.client.files.getUploadURLExternal({ filename, length: content.size, alt_text: prompt }));
      if (!target.upload_url || !target.file_id) throw new Error('files.getUploadURLExternal gave no upload_url');
      await postToUploadUrl({ uploadUrl: target.upload_url, path: image.path, ...content, filename, mime: image.mime, token: ctx.botToken, apiUrl: slackApiUrl(ctx.config) });
      return { id: target.file_id, title: images.length > 1 ? `${prompt} (${index + 1})` : prompt };
    }),
  );
  await inChannel(ctx, channel, () =>
    background(ctx, () => ctx.client.files.completeUploadExternal({ files: files as [{ id: string; title: string }], channel_id: channel, ...(threadTs ? { thread_ts: threadTs } : {}) })),
  );
  return files.map((f) => f.id);
}

/**
 * Step 2 of Slack's external upload flow: POSTs one file to the `upload_url` that
 * files.getUploadURLExternal returned, as multipart/form-data (what Slack's docs and SDKs send):
 * `bytes` when the caller has them, else streamed from disk so a 20 MB image never blocks the
 * event loop or sits in memory twice. The bot token goes along only to Slack's own hosts.
 */
export async function postToUploadUrl(opts: {
  uploadUrl: string;
  path: string;
  /** The file's size, when the caller knows it. */
  size?: number;
  /** The file's content, when the caller has it in memory (the file is then not read). */
  bytes?: Buffer | undefined;
  filename: string;
  mime: string;
  token: string;
  apiUrl: string;
  dispatcher?: Dispatcher;
}): Promise<void> {
  const size = opts.bytes?.length ?? opts.size ?? (await stat(opts.path)).size;
  const boundary = `----imagine-${randomUUID()}`;
  const safeName = opts.filename.replace(/["\r\n]/g, '_');
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${safeName}"\r\nContent-Type: ${opts.mime}\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  // From disk in UPLOAD_READ_BYTES pieces: a 1K result in one read, not one per 64 KiB. `end`
  // (the size is known): a read asks for what is left, not a whole piece, so a 500 KiB file gets
  // a 500 KiB buffer, and no further read and buffer to find the end of the file.
  async function* parts() {
    yield head;
    if (size > 0) yield* createReadStream(opts.path, { highWaterMark: UPLOAD_READ_BYTES, start: 0, end: size - 1 });
    yield tail;
  }
  // In memory: the three pieces as they are, not copied into one buffer.
  const body = Readable.from(opts.bytes ? [head, opts.bytes, tail] : parts());
  const res = await request(opts.uploadUrl, {
    method: 'POST',
    headers: {
      'content-type': `multipart/form-data; boundary=${boundary}`,
      'content-length': String(head.length + size + tail.length),
      ...(isSlackFileUrl(opts.uploadUrl, opts.apiUrl) ? { authorization: `Bearer ${opts.token}` } : {}),
    },
    body,
    headersTimeout: UPLOAD_TIMEOUT_MS,
    bodyTimeout: UPLOAD_TIMEOUT_MS,
    ...(opts.dispatcher ? { dispatcher: opts.dispatcher } : {}),
  });
  const answer = await res.body.text();
  if (res.statusCode !== 200) throw new UploadRefusedError(opts.filename, res.statusCode, answer);
}

/** The upload URL answered something other than 200. */
export class UploadRefusedError extends Error {
  readonly status: number;
  constructor(filename: string, status: number, answer: string) {
    super(`upload of ${filename} failed: HTTP ${status} ${answer.slice(0, 200)}`);
    this.name = 'UploadRefusedError';
    this.status = status;
  }
}
