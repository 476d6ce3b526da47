/**
 * Makes result images fit Discord's upload limits (docs/discord.md "Files"): each file under
 * the interaction's `attachment_size_limit` (10 MiB by default), the whole message under 25 MiB,
 * at most 10 files. A file that is too large is re-encoded with sharp — WebP at the highest
 * quality that fits, then JPEG, then (only if still needed) smaller — so an image is never lost
 * and Discord never answers 413. sharp reads the job's file from disk and encodes on libvips'
 * thread pool, off the event loop.
 */
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { EXTENSION_BY_MIME, type ImageMime } from '../../engine/image-sniff.ts';
import type { RecentResults } from '../../engine/recent-results.ts';
import { concurrencyLimit } from '../../util/limit.ts';
import { MiB } from '../../util/units.ts';

export const DEFAULT_ATTACHMENT_SIZE_LIMIT_BYTES = 10 * MiB;
/** Discord's cap on one message request, files and JSON together. */
export const MAX_MESSAGE_REQUEST_BYTES = 25 * MiB;
/** Room kept for the JSON payload and multipart framing. */
export const MULTIPART_OVERHEAD_BYTES = 256 * 1024;
export const MAX_ATTACHMENTS_PER_MESSAGE = 10;

/** Qualities tried in order; the first that fits wins, so the result is the highest that fits among them. */
export const WEBP_QUALITIES = [95, 90, 85, 80, 70, 60, 50] as const;
export const JPEG_QUALITIES = [90, 80, 70, 60, 50] as const;
/**
 * Re-encodes running at once in this process. Decoding a 4K PNG and encoding it as WebP holds
 * about 100 MB; four 4K results fitted together peaked at 410–428 MB above idle, two at a time
 * keep it far lower (`npm run bench -- peak`). Files within the limit are not re-encoded and
 * never wait.
 */
export const REENCODE_CONCURRENCY = 2;
const reencodeSlot = concurrencyLimit(REENCODE_CONCURRENCY);

/** Last resort for pathological images: shrink (keeping the ratio) at a fixed JPEG quality. */
const DOWNSCALE_FACTORS = [0.75, 0.5, 0.35, 0.25, 0.15] as const;

export interface SourceImage {
  path: string;
  mime: ImageMime;
  bytes: number;
}

export interface UploadFile {
  name: string;
  data: Buffer;
  contentType: string;
  /** True when the bytes are not the original file (re-encoded or resized). */
  reencoded: boolean;
  originalBytes: number;
  /** e.g. "webp q90", "jpeg q80", "jpeg q80 at 50%". */
  encoding?: string;
}


/** The per-file budget when `count` files share one message. */
export function perFileBudget(attachmentSizeLimit: number, count: number): number {
  const shared = Math.floor((MAX_MESSAGE_REQUEST_BYTES - MULTIPART_OVERHEAD_BYTES) / Math.max(1, count));
  return Math.max(1, Math.min(attachmentSizeLimit, shared));
}

/**
 * One image as an upload no larger than `budgetBytes`. `baseName` has no extension (the
 * format decides it).
 */
export async function fitToUploadLimit(image: SourceImage, budgetBytes: number, baseName: string, recent?: RecentResults | undefined): Promise<UploadFile> {
  // The bytes the download just wrote, when still in hand (recent-results.ts), sent or re-encoded
  // without reading the file; taken either way, so they are not held after this.
  const inHand = recent?.take(image.path);
  if (image.bytes <= budgetBytes) {
    const data = inHand ?? (await readFile(image.path));
    if (data.length <= budgetBytes) {
      return { name: `${baseName}.${EXTENSION_BY_MIME[image.mime]}`, data, contentType: image.mime, reencoded: false, originalBytes: data.length };
    }
  }
  return reencodeSlot(() => reencode(image, inHand ?? image.path, budgetBytes, baseName));
}

/** The smallest change that brings the image (`input`: its bytes or its file) under `budgetBytes`: WebP, then JPEG, then smaller. */
async function reencode(image: SourceImage, input: Buffer | string, budgetBytes: number, baseName: string): Promise<UploadFile> {
  const file = (data: Buffer, format: 'webp' | 'jpeg', encoding: string): UploadFile => ({
    name: `${baseName}.${format === 'webp' ? 'webp' : 'jpg'}`,
    data,
    contentType: `image/${format}`,
    reencoded: true,
    originalBytes: image.bytes,
    encoding,
  });
  // WebP cannot hold images wider or taller than 16383 px; providers' 4K stays well under.
  const meta = await sharp(input).metadata();
  const webpPossible = (meta.width ?? 0) <= 16_383 && (meta.height ?? 0) <= 16_383;
  if (webpPossible) {
    for (const quality of WEBP_QUALITIES) {
      const data = await sharp(input).webp({ quality, effort: 3 }).toBuffer();
      if (data.length <= budgetBytes) return file(data, 'webp', `webp q${quality}`);
    }
  }
  for (const quality of JPEG_QUALITIES) {
    const data = await sharp(input).flatten({ background: '#ffffff' }).jpeg({ quality, mozjpeg: true }).toBuffer();
    if (data.length <= budgetBytes) return file(data, 'jpeg', `jpeg q${quality}`);
  }
  for (const factor of DOWNSCALE_FACTORS) {
    const width = Math.max(1, Math.round((meta.width ?? 1024) * factor));
    const data = await sharp(input).resize({ width }).flatten({ background: '#ffffff' }).jpeg({ quality: 80, mozjpeg: true }).toBuffer();
    if (data.length <= budgetBytes) return file(data, 'jpeg', `jpeg q80 at ${Math.round(factor * 100)}%`);
  }
  throw new Error(`image ${image.path} cannot be made smaller than ${budgetBytes} bytes`);
}

/** Every image of a job as uploads that fit one message together (≤ 10 files, each under the limit, ≤ 25 MiB in all). */
export async function fitImagesForUpload(
  images: readonly (SourceImage & { baseName: string })[],
  attachmentSizeLimit: number,
  recent?: RecentResults | undefined,
): Promise<UploadFile[]> {
  const sent = images.slice(0, MAX_ATTACHMENTS_PER_MESSAGE);
  const budget = perFileBudget(attachmentSizeLimit, sent.length);
  return Promise.all(sent.map((img) => fitToUploadLimit(img, budget, img.baseName, recent)));
}
