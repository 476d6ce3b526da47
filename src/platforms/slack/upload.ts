/**
 * Posting result images into Slack with the external upload flow (what files.uploadV2 does:
 * https://docs.slack.dev/reference/methods/files.getUploadURLExternal): files.getUploadURLExternal per
 * image, the bytes POSTed to its upload_url, then one files.completeUploadExternal sharing them
 * all into the channel (and thread), so they arrive as one message.
 */
import type { Dispatcher } from 'undici';
import { truncatePrompt } from '../../../commands/render.ts';
import { EXTENSION_BY_MIME } from '../../engine/image-sniff.ts';
import type { JobRecord } from '../../engine/job.ts';
import { resultContent } from '../../engine/recent-results.ts';
import type { imagesOf } from './blocks.ts';
import { postFile, type FileUpload, type FileUploader } from '../../util/file-upload.ts';
import { background, inChannel, slackApiUrl, type SlackContext } from './context.ts';
import { isSlackFileUrl } from './files.ts';

export const UPLOAD_TIMEOUT_MS = 120_000;

/**
 * Uploads a job's images as one message in the channel (and thread); returns their file ids. Each
 * image is sent by the results thread when the app has one (`ctx.uploadFile`: it reads the file
 * there, and the app keeps no bytes for Slack); else here, from the bytes of the download that
 * just wrote it when still in hand (`ctx.recentResults`), or streamed from disk. The size given is
 * the one the download recorded: nothing here looks at the file.
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
      const content = resultContent(ctx.recentResults, image);
      const target = await background(ctx, () => ctx.web.files.getUploadURLExternal({ filename, length: content.size, alt_text: prompt }));
      if (!target.upload_url || !target.file_id) throw new Error('files.getUploadURLExternal gave no upload_url');
      await postToUploadUrl({ uploadUrl: target.upload_url, path: image.path, ...content, filename, mime: image.mime, token: ctx.botToken, apiUrl: slackApiUrl(ctx.config), uploader: ctx.uploadFile });
      return { id: target.file_id, title: images.length > 1 ? `${prompt} (${index + 1})` : prompt };
    }),
  );
  await inChannel(ctx, channel, () =>
    background(ctx, () => ctx.web.files.completeUploadExternal({ files: files as [{ id: string; title: string }], channel_id: channel, ...(threadTs ? { thread_ts: threadTs } : {}) })),
  );
  return files.map((f) => f.id);
}

/**
 * Step 2 of Slack's external upload flow: POSTs one file to the `upload_url` that
 * files.getUploadURLExternal returned, as multipart/form-data (what Slack's docs and SDKs send;
 * src/util/file-upload.ts). Bytes in hand are sent here as they are; else, with `uploader` (the
 * results thread, src/app.ts), the file is read and sent there, off the event loop; else here,
 * streamed from disk. The bot token goes along only to Slack's own hosts.
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
  uploader?: FileUploader | undefined;
  dispatcher?: Dispatcher;
}): Promise<void> {
  const upload: FileUpload = {
    url: opts.uploadUrl,
    path: opts.path,
    size: opts.bytes?.length ?? opts.size,
    filename: opts.filename,
    mime: opts.mime,
    ...(isSlackFileUrl(opts.uploadUrl, opts.apiUrl) && { headers: { authorization: `Bearer ${opts.token}` } }),
    timeoutMs: UPLOAD_TIMEOUT_MS,
  };
  const answer = opts.uploader && !opts.bytes ? await opts.uploader(upload) : await postFile(upload, { bytes: opts.bytes, dispatcher: opts.dispatcher });
  if (answer.status !== 200) throw new UploadRefusedError(opts.filename, answer.status, answer.text);
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
