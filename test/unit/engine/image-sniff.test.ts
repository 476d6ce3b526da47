import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sniffFile, sniffImage } from '../../../src/engine/image-sniff.ts';

const solid = (width: number, height: number, channels: 3 | 4 = 3) =>
  sharp({ create: { width, height, channels, background: { r: 200, g: 40, b: 90, alpha: 0.5 } } });

describe('sniffImage', () => {
  it('recognises PNG and reads IHDR', async () => {
    const png = await solid(321, 123).png().toBuffer();
    expect(sniffImage(png)).toEqual({ mime: 'image/png', width: 321, height: 123 });
  });

  it('recognises JPEG and reads the SOF frame header (baseline and progressive)', async () => {
    const baseline = await solid(640, 480).jpeg().toBuffer();
    const progressive = await solid(100, 37).jpeg({ progressive: true }).toBuffer();
    expect(sniffImage(baseline)).toEqual({ mime: 'image/jpeg', width: 640, height: 480 });
    expect(sniffImage(progressive)).toEqual({ mime: 'image/jpeg', width: 100, height: 37 });
  });

  it('recognises WEBP in its three flavours: lossy VP8, lossless VP8L, extended VP8X', async () => {
    const lossy = await solid(300, 200).webp({ quality: 80 }).toBuffer();
    const lossless = await solid(1000, 7).webp({ lossless: true }).toBuffer();
    const extended = await solid(1500, 1100, 4).webp({ quality: 50, effort: 0 }).withMetadata().toBuffer();
    expect(lossy.subarray(12, 16).toString('latin1')).toBe('VP8 ');
    expect(lossless.subarray(12, 16).toString('latin1')).toBe('VP8L');
    expect(extended.subarray(12, 16).toString('latin1')).toBe('VP8X');
    expect(sniffImage(lossy)).toEqual({ mime: 'image/webp', width: 300, height: 200 });
    expect(sniffImage(lossless)).toEqual({ mime: 'image/webp', width: 1000, height: 7 });
    expect(sniffImage(extended)).toEqual({ mime: 'image/webp', width: 1500, height: 1100 });
  });

  it('refuses what is not PNG/JPEG/WEBP, whatever it claims to be', async () => {
    const gif = await solid(10, 10).gif().toBuffer();
    expect(sniffImage(gif)).toBeUndefined();
    expect(sniffImage(new TextEncoder().encode('<!doctype html><title>image.png</title>'))).toBeUndefined();
    expect(sniffImage(new Uint8Array(0))).toBeUndefined();
    // RIFF but not WEBP (a WAV file)
    expect(sniffImage(new TextEncoder().encode('RIFF\u0024\u0000\u0000\u0000WAVEfmt '))).toBeUndefined();
  });

  it('keeps the type but no size for truncated headers', async () => {
    const png = await solid(50, 60).png().toBuffer();
    expect(sniffImage(png.subarray(0, 12))).toEqual({ mime: 'image/png' });
    const jpeg = await solid(50, 60).jpeg().toBuffer();
    expect(sniffImage(jpeg.subarray(0, 20))).toEqual({ mime: 'image/jpeg' });
  });
});

describe('sniffFile', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sniff-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('finds a JPEG frame header that sits beyond the first 64 KiB (large APP segments)', async () => {
    const jpeg = await solid(800, 600).jpeg().toBuffer();
    // Insert three 60 KiB APP2 segments after SOI, as big ICC profiles do.
    const app = (n: number) => {
      const body = Buffer.alloc(60 * 1024, n);
      const head = Buffer.from([0xff, 0xe2, 0, 0]);
      head.writeUInt16BE(body.length + 2, 2);
      return Buffer.concat([head, body]);
    };
    const padded = Buffer.concat([jpeg.subarray(0, 2), app(1), app(2), app(3), jpeg.subarray(2)]);
    const path = join(dir, 'big-icc.jpg');
    await writeFile(path, padded);
    expect(sniffImage(padded.subarray(0, 64 * 1024))).toEqual({ mime: 'image/jpeg' });
    expect(await sniffFile(path)).toEqual({ mime: 'image/jpeg', width: 800, height: 600 });
  });

  it('refuses a text file named .png', async () => {
    const path = join(dir, 'fake.png');
    await writeFile(path, 'not an image at all, just text pretending');
    expect(await sniffFile(path)).toBeUndefined();
  });
});
