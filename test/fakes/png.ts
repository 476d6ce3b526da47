/**
 * Real PNG outputs for the fake providers, at the size a real Nano Banana model would produce.
 *
 * Size rule (`outputSize`): 1K is Google's published Gemini image table (≈1 megapixel, sides
 * multiples of 16): 1:1 1024×1024, 2:3 848×1264, 3:2 1264×848, 3:4 896×1200, 4:3 1200×896,
 * 4:5 928×1152, 5:4 1152×928, 9:16 768×1376, 16:9 1376×768, 21:9 1584×672. The extra
 * nano-banana-2 ratios keep the same area: 1:4 512×2048, 4:1 2048×512, 1:8 368×2896,
 * 8:1 2896×368. 2K doubles each side, 4K quadruples it (4K 1:1 = 4096×4096). `auto` → 1:1.
 *
 * Content: a colour gradient chosen by the seed plus one bit of noise in the green channel, so a
 * 4K PNG weighs ~6 MiB (2K ~1.9 MiB, 1K ~0.6 MiB) like a real photo-ish output. `noisy` puts one
 * noise bit in every channel: a 4K noisy PNG is ~14 MiB (> 10 MiB, for upload-limit tests).
 *
 * Encoding a 4K PNG costs ~0.5–0.7 s of CPU, so pixels are cached per (width, height, seed, noisy);
 * `outputPng` picks the seed from the task id among `variants` (default 4) and stamps the task
 * id into a tEXt chunk ("fake-task-id"), so every task's bytes differ while the expensive part is
 * shared. Everything is deterministic: the same task id always gives the same bytes.
 */
import zlib from 'node:zlib';
import sharp from 'sharp';
import { hashString } from './fault.ts';

export type OutputResolution = '1K' | '2K' | '4K';

const SIZE_1K: Record<string, readonly [number, number]> = {
  '1:1': [1024, 1024],
  '2:3': [848, 1264],
  '3:2': [1264, 848],
  '3:4': [896, 1200],
  '4:3': [1200, 896],
  '4:5': [928, 1152],
  '5:4': [1152, 928],
  '9:16': [768, 1376],
  '16:9': [1376, 768],
  '21:9': [1584, 672],
  '1:4': [512, 2048],
  '4:1': [2048, 512],
  '1:8': [368, 2896],
  '8:1': [2896, 368],
};

const SCALE: Record<OutputResolution, number> = { '1K': 1, '2K': 2, '4K': 4 };

/** Pixel size of an output; unknown ratios and `auto` give 1:1. */
export function outputSize(aspectRatio: string, resolution: OutputResolution): { width: number; height: number } {
  const [width, height] = SIZE_1K[aspectRatio] ?? SIZE_1K['1:1']!;
  const scale = SCALE[resolution];
  return { width: width * scale, height: height * scale };
}

export interface RenderSpec {
  width: number;
  height: number;
  seed: number;
  noisy?: boolean;
}

/** Keep the cache bounded: a 4K noisy PNG is ~16 MB. */
const CACHE_LIMIT_BYTES = 400 * 1024 * 1024;
const cache = new Map<string, Promise<Buffer>>();
const cachedBytes = new Map<string, number>();

function renderPixels({ width, height, seed, noisy }: RenderSpec): Buffer {
  const pixels = Buffer.allocUnsafe(width * height * 3);
  const base = hashString(`colour:${seed}`);
  const r0 = base & 0x7f;
  const g0 = (base >>> 8) & 0x7f;
  const b0 = (base >>> 16) & 0x7f;
  let state = (seed ^ 0x9e3779b9) >>> 0 || 1;
  let i = 0;
  for (let y = 0; y < height; y++) {
    const gy = ((y * 120) / height) | 0;
    for (let x = 0; x < width; x++) {
      // xorshift32: fast, deterministic noise.
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      const gx = ((x * 120) / width) | 0;
      pixels[i++] = r0 + gx + (noisy ? state & 1 : 0);
      pixels[i++] = g0 + gy + ((state >>> 8) & 1);
      pixels[i++] = b0 + ((gx + gy) >> 1) + (noisy ? (state >>> 16) & 1 : 0);
    }
  }
  return pixels;
}

/** A PNG of exactly width×height, cached. */
export function renderPng(spec: RenderSpec): Promise<Buffer> {
  const key = `${spec.width}x${spec.height}:${spec.seed}:${spec.noisy ? 'noisy' : 'plain'}`;
  const hit = cache.get(key);
  if (hit) {
    // Refresh LRU order.
    cache.delete(key);
    cache.set(key, hit);
    return hit;
  }
  const made = sharp(renderPixels(spec), { raw: { width: spec.width, height: spec.height, channels: 3 } })
    .png({ compressionLevel: 3 })
    .toBuffer()
    .then((png) => {
      cachedBytes.set(key, png.length);
      evict();
      return png;
    });
  made.catch(() => cache.delete(key));
  cache.set(key, made);
  return made;
}

function evict(): void {
  let total = [...cachedBytes.values()].reduce((sum, bytes) => sum + bytes, 0);
  for (const key of cache.keys()) {
    if (total <= CACHE_LIMIT_BYTES) break;
    const bytes = cachedBytes.get(key);
    if (bytes === undefined) continue; // still rendering
    cache.delete(key);
    cachedBytes.delete(key);
    total -= bytes;
  }
}

/** Inserts a tEXt chunk right after IHDR (PNG signature 8 bytes + IHDR chunk 25 bytes). */
export function stampPngText(png: Buffer, keyword: string, text: string): Buffer {
  const data = Buffer.from(`${keyword}\0${text}`, 'latin1');
  const chunk = Buffer.alloc(12 + data.length);
  chunk.writeUInt32BE(data.length, 0);
  chunk.write('tEXt', 4, 'latin1');
  data.copy(chunk, 8);
  chunk.writeUInt32BE(zlib.crc32(chunk.subarray(4, 8 + data.length)), 8 + data.length);
  const afterIhdr = 8 + 25;
  return Buffer.concat([png.subarray(0, afterIhdr), chunk, png.subarray(afterIhdr)]);
}

export interface OutputSpec {
  taskId: string;
  aspectRatio: string;
  resolution: OutputResolution;
  noisy?: boolean;
  /** How many distinct pixel contents to spread tasks over (default 4). */
  variants?: number;
}

/** The output image of a task: real PNG at the model's size, unique bytes per task id. */
export async function outputPng(spec: OutputSpec): Promise<Buffer> {
  const { width, height } = outputSize(spec.aspectRatio, spec.resolution);
  const seed = hashString(spec.taskId) % Math.max(1, spec.variants ?? 4);
  const png = await renderPng({ width, height, seed, noisy: spec.noisy ?? false });
  return stampPngText(png, 'fake-task-id', spec.taskId);
}

export type SniffedImageType = 'png' | 'jpeg' | 'webp';

/** Recognises PNG, JPEG and WEBP by their magic bytes. */
export function sniffImageType(bytes: Uint8Array): SniffedImageType | undefined {
  if (bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47 && bytes[4] === 0x0d && bytes[5] === 0x0a && bytes[6] === 0x1a && bytes[7] === 0x0a) {
    return 'png';
  }
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (bytes.length >= 12 && Buffer.from(bytes.subarray(0, 4)).toString('latin1') === 'RIFF' && Buffer.from(bytes.subarray(8, 12)).toString('latin1') === 'WEBP') {
    return 'webp';
  }
  return undefined;
}
