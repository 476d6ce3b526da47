import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RecentResults } from '../../../../src/engine/recent-results.ts';
import { MiB } from '../../../../src/util/units.ts';
import {
  MAX_MESSAGE_REQUEST_BYTES,
  fitImagesForUpload,
  fitToUploadLimit,
  perFileBudget,
} from '../../../../src/platforms/discord/fit-upload.ts';

let dir: string;
let bigPng: string;
let bigBytes: number;
let smallPng: string;
let noisyPng: string;
let noisyBytes: number;
let smallBytes: number;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fit-upload-'));
  // Random pixels do not compress: 2048×2048 RGB noise is a ~12 MB PNG, over the 10 MiB limit.
  const noise = await sharp(randomBytes(2048 * 2048 * 3), { raw: { width: 2048, height: 2048, channels: 3 } }).png().toBuffer();
  bigPng = join(dir, 'big.png');
  await writeFile(bigPng, noise);
  bigBytes = noise.length;
  const noisy = await sharp(randomBytes(512 * 512 * 3), { raw: { width: 512, height: 512, channels: 3 } }).png().toBuffer();
  noisyPng = join(dir, 'noisy.png');
  await writeFile(noisyPng, noisy);
  noisyBytes = noisy.length;
  const small = await sharp({ create: { width: 640, height: 480, channels: 3, background: '#3366cc' } }).png().toBuffer();
  smallPng = join(dir, 'small.png');
  await writeFile(smallPng, small);
  smallBytes = small.length;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('fitToUploadLimit', () => {
  it('sends a file that fits as it is', async () => {
    const f = await fitToUploadLimit({ path: smallPng, mime: 'image/png', bytes: smallBytes }, 10 * MiB, 'imagine-1');
    expect(f).toMatchObject({ name: 'imagine-1.png', contentType: 'image/png', reencoded: false });
    expect(f.data.length).toBe(smallBytes);
  });

  it('sends the bytes a download just kept without reading its file', async () => {
    const kept = Buffer.from('\x89PNG\r\n\x1a\nkept', 'latin1');
    const path = join(dir, 'never-written.png');
    const recent = new RecentResults();
    recent.remember(path, kept);
    const f = await fitToUploadLimit({ path, mime: 'image/png', bytes: kept.length }, 10 * MiB, 'imagine-k', recent);
    expect(f.data).toEqual(kept);
    expect(recent.take(path)).toBeUndefined();
  });

  it('re-encodes the bytes a download just kept without reading its file, and holds them no longer', async () => {
    const recent = new RecentResults();
    const path = join(dir, 'never-written-noisy.png');
    recent.remember(path, await readFile(noisyPng));
    const f = await fitToUploadLimit({ path, mime: 'image/png', bytes: noisyBytes }, 60 * 1024, 'tiny-kept', recent);
    expect(f.reencoded).toBe(true);
    expect(f.data.length).toBeLessThanOrEqual(60 * 1024);
    expect(recent.bytes.held).toBe(0);
  }, 60_000);

  it('re-encodes an oversized PNG to WebP under the limit, keeping its size in pixels', async () => {
    expect(bigBytes).toBeGreaterThan(10 * MiB);
    const f = await fitToUploadLimit({ path: bigPng, mime: 'image/png', bytes: bigBytes }, 10 * MiB, 'imagine-2');
    expect(f.data.length).toBeLessThanOrEqual(10 * MiB);
    expect(f).toMatchObject({ name: 'imagine-2.webp', contentType: 'image/webp', reencoded: true, originalBytes: bigBytes });
    const meta = await sharp(f.data).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['webp', 2048, 2048]);
  }, 30_000);

  it('goes down to JPEG and smaller sizes when even WebP at low quality does not fit', async () => {
    const f = await fitToUploadLimit({ path: noisyPng, mime: 'image/png', bytes: noisyBytes }, 60 * 1024, 'tiny');
    expect(f.data.length).toBeLessThanOrEqual(60 * 1024);
    expect(f.contentType).toBe('image/jpeg');
    expect(f.encoding).toMatch(/^jpeg q\d+/);
  }, 60_000);
});

describe('fitImagesForUpload', () => {
  it('shares the 25 MiB message cap between files', async () => {
    expect(perFileBudget(10 * MiB, 1)).toBe(10 * MiB);
    expect(perFileBudget(10 * MiB, 4) * 4).toBeLessThan(MAX_MESSAGE_REQUEST_BYTES);
    expect(perFileBudget(50 * MiB, 2) * 2).toBeLessThan(MAX_MESSAGE_REQUEST_BYTES);
  });

  it('fits four large images into one message', async () => {
    const images = [0, 1, 2, 3].map((n) => ({ path: bigPng, mime: 'image/png' as const, bytes: bigBytes, baseName: `img-${n}` }));
    const files = await fitImagesForUpload(images, 10 * MiB);
    expect(files).toHaveLength(4);
    const total = files.reduce((sum, f) => sum + f.data.length, 0);
    expect(total).toBeLessThan(MAX_MESSAGE_REQUEST_BYTES - 256 * 1024);
    for (const f of files) expect(f.data.length).toBeLessThanOrEqual(10 * MiB);
  }, 60_000);
});
