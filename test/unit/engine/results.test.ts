import { randomBytes } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ResultDownloadError } from '../../../src/engine/errors.ts';
import { RecentResults } from '../../../src/engine/recent-results.ts';
import { downloadResult, downloadToFile } from '../../../src/engine/results.ts';

const fast = { retry: { sleep: async () => undefined, random: () => 0 } };

describe('downloadResult', () => {
  let server: Server;
  let base: string;
  let dir: string;
  let png: Buffer;
  let jpeg: Buffer;
  const hits = new Map<string, number>();
  let hugeBytesSent = 0;
  let hugeClosedEarly = false;
  /** 3 MiB past a PNG header: several write batches, or one kept buffer when declared. */
  let noise: Buffer;
  const closedEarly = new Map<string, boolean>();

  const stream = (res: ServerResponse, total: number, chunk: Buffer, onClose: (sent: number, early: boolean) => void) => {
    let sent = 0;
    res.writeHead(200, { 'content-type': 'image/png' }); // no content-length: the cap must work on the stream
    const pump = () => {
      while (sent < total) {
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    res.on('close', () => onClose(sent, sent < total));
    pump();
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'results-'));
    png = await sharp({ create: { width: 1024, height: 576, channels: 3, background: '#3a6' } }).png().toBuffer();
    noise = Buffer.concat([png.subarray(0, 64), randomBytes(3 * 1024 * 1024)]);
    jpeg = await sharp({ create: { width: 640, height: 640, channels: 3, background: '#a36' } }).jpeg().toBuffer();
    server = createServer((req, res) => {
      const path = req.url ?? '/';
      hits.set(path, (hits.get(path) ?? 0) + 1);
      const n = hits.get(path) ?? 0;
      if (path === '/out.png') return void res.writeHead(200, { 'content-type': 'image/png', 'content-length': png.length }).end(png);
      if (path === '/mislabelled') return void res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(jpeg);
      if (path === '/html') return void res.writeHead(200, { 'content-type': 'image/png' }).end('<html>Access denied</html>'.repeat(10));
      if (path === '/flaky') {
        if (n <= 2) return void res.writeHead(503).end('busy');
        return void res.writeHead(200).end(png);
      }
      if (path === '/gone') return void res.writeHead(404).end('nope');
      if (path === '/redirect') return void res.writeHead(302, { location: '/out.png' }).end();
      if (path === '/huge') {
        // A real PNG header, then 8 MiB of junk: over a 1 MiB cap.
        return stream(res, 8 * 1024 * 1024, Buffer.concat([png.subarray(0, 64), Buffer.alloc(64 * 1024 - 64)]), (sent, early) => {
          hugeBytesSent = sent;
          hugeClosedEarly = early;
        });
      }
      if (path === '/jpeg-late-frame') {
        // Two 60 KiB APP segments before the frame header: its size lies past the first 64 KiB.
        const app = Buffer.concat([Buffer.from([0xff, 0xe1, 0xf0, 0x02]), Buffer.alloc(0xf000)]);
        const late = Buffer.concat([jpeg.subarray(0, 2), app, app, jpeg.subarray(2)]);
        return void res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': late.length }).end(late);
      }
      if (path === '/noise-chunked') return void res.writeHead(200, { 'content-type': 'image/png' }).end(noise);
      if (path === '/noise-declared') return void res.writeHead(200, { 'content-type': 'image/png', 'content-length': noise.length }).end(noise);
      if (path.startsWith('/stall')) {
        // The head of a PNG, then nothing: the download is stopped from our side.
        res.writeHead(200, { 'content-type': 'image/png', 'content-length': 4 * 1024 * 1024 });
        res.write(noise.subarray(0, 128 * 1024));
        res.on('close', () => closedEarly.set(path, true));
        return;
      }
      if (path === '/rgba-4k') {
        // As large as a 4K RGBA noise PNG can be (~68 MB): past 64 MiB.
        return stream(res, 68 * 1024 * 1024, Buffer.concat([png.subarray(0, 64), Buffer.alloc(1024 * 1024 - 64)]), () => undefined);
      }
      res.writeHead(500).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  it('streams a PNG to disk and records its type, size and dimensions', async () => {
    const dest = join(dir, 'job1', '0.png');
    const image = await downloadResult(`${base}/out.png`, dest);
    expect(image).toEqual({ path: dest, sourceUrl: `${base}/out.png`, mime: 'image/png', bytes: png.length, width: 1024, height: 576 });
    expect(Buffer.compare(await readFile(dest), png)).toBe(0);
    expect(await readdir(join(dir, 'job1'))).toEqual(['0.png']); // no temp file left behind
  });

  it('keeps the bytes it wrote in hand for the deliverer, once; not a result larger than an entry may be', async () => {
    const keep = new RecentResults();
    const dest = join(dir, 'kept', '0.png');
    await downloadResult(`${base}/out.png`, dest, { keep });
    expect(Buffer.compare(keep.take(dest)!, png)).toBe(0);
    expect(Buffer.compare(await readFile(dest), png)).toBe(0);
    expect(keep.take(dest)).toBeUndefined();
    const big = join(dir, 'kept', 'big.png');
    await downloadResult(`${base}/rgba-4k`, big, { ...fast, keep });
    expect(keep.take(big)).toBeUndefined();
    expect(keep.bytes).toEqual({ held: 0, reserved: 0 });
  });

  it('writes every byte of a body of several batches, kept or not, and keeps it only when its size was declared', async () => {
    const keep = new RecentResults();
    for (const [path, kept] of [
      ['/noise-chunked', false],
      ['/noise-declared', true],
    ] as const) {
      const dest = join(dir, 'noise', `${path.slice(1)}.png`);
      const image = await downloadResult(`${base}${path}`, dest, { keep });
      expect(image.bytes).toBe(noise.length);
      expect(Buffer.compare(await readFile(dest), noise)).toBe(0);
      const inHand = keep.take(dest);
      expect(inHand !== undefined).toBe(kept);
      if (inHand) expect(Buffer.compare(inHand, noise)).toBe(0);
    }
    expect(keep.bytes).toEqual({ held: 0, reserved: 0 });
  });

  it("finds a JPEG's size past the first 64 KiB, kept in hand or not", async () => {
    for (const keep of [new RecentResults(), undefined]) {
      const image = await downloadResult(`${base}/jpeg-late-frame`, join(dir, 'late', `${keep ? 'kept' : 'file'}.jpg`), { keep });
      expect(image).toMatchObject({ mime: 'image/jpeg', width: 640, height: 640 });
    }
  });

  it('stopped mid-body: rejects with the reason, leaves no file, closes the connection and frees its reservation', async () => {
    const keep = new RecentResults();
    const ctrl = new AbortController();
    const pending = downloadResult(`${base}/stall-abort`, join(dir, 'j9', 'x.png'), { keep, signal: ctrl.signal });
    await vi.waitFor(() => expect(keep.bytes.reserved).toBe(4 * 1024 * 1024));
    ctrl.abort(new Error('job canceled'));
    await expect(pending).rejects.toThrow('job canceled');
    expect(await readdir(join(dir, 'j9'))).toEqual([]);
    expect(keep.bytes).toEqual({ held: 0, reserved: 0 });
    await vi.waitFor(() => expect(closedEarly.get('/stall-abort')).toBe(true));
  });

  it('a temp file that cannot be opened fails the download and lets go of the response at once', async () => {
    const keep = new RecentResults();
    const err = await downloadToFile(`${base}/stall-open`, join(dir, 'no-such-dir', 'x.png'), { maxBytes: 8 * 1024 * 1024, keep }).catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).toBe('ENOENT');
    expect(keep.bytes).toEqual({ held: 0, reserved: 0 });
    await vi.waitFor(() => expect(closedEarly.get('/stall-open')).toBe(true));
  });

  it('types the file by content, not by Content-Type, and follows a redirect', async () => {
    const image = await downloadResult(`${base}/mislabelled`, join(dir, 'j2', 'a'));
    expect(image).toMatchObject({ mime: 'image/jpeg', width: 640, height: 640 });
    const redirected = await downloadResult(`${base}/redirect`, join(dir, 'j2', 'b'));
    expect(redirected).toMatchObject({ mime: 'image/png', sourceUrl: `${base}/redirect` });
  });

  it('refuses content that is not an image, leaving nothing on disk', async () => {
    const err = await downloadResult(`${base}/html`, join(dir, 'j3', 'x.png'), fast).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ResultDownloadError);
    expect((err as Error).message).toMatch(/not PNG, JPEG or WEBP/);
    expect(await readdir(join(dir, 'j3'))).toEqual([]);
    expect(hits.get('/html')).toBe(1); // not retried
  });

  it('aborts a download past the size cap while streaming (bounded memory), without retrying', async () => {
    const before = process.memoryUsage().rss;
    const err = await downloadResult(`${base}/huge`, join(dir, 'j4', 'x.png'), { ...fast, maxBytes: 1024 * 1024 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ResultDownloadError);
    expect((err as Error).message).toMatch(/more than 1048576 bytes/);
    await new Promise((r) => setTimeout(r, 50));
    expect(hugeClosedEarly).toBe(true);
    expect(hugeBytesSent).toBeLessThan(8 * 1024 * 1024);
    expect(await readdir(join(dir, 'j4'))).toEqual([]);
    expect(hits.get('/huge')).toBe(1);
    expect(process.memoryUsage().rss - before).toBeLessThan(64 * 1024 * 1024);
  });

  it('accepts by default a result as large as a 4K RGBA PNG can be, streamed, without holding it in memory', async () => {
    const dest = join(dir, 'j8', '0.png');
    const image = await downloadResult(`${base}/rgba-4k`, dest, fast);
    expect(image).toMatchObject({ mime: 'image/png', bytes: 68 * 1024 * 1024 });
    expect(await readdir(join(dir, 'j8'))).toEqual(['0.png']);
  });

  it('retries 5xx answers with the shared policy, calling the gate before every attempt', async () => {
    const gated: string[] = [];
    const image = await downloadResult(`${base}/flaky`, join(dir, 'j5', 'x.png'), {
      ...fast,
      gate: async (kind) => {
        gated.push(kind);
      },
    });
    expect(image.mime).toBe('image/png');
    expect(hits.get('/flaky')).toBe(3);
    expect(gated).toEqual(['poll', 'poll', 'poll']);
  });

  it('does not retry a 404', async () => {
    const err = await downloadResult(`${base}/gone`, join(dir, 'j6', 'x.png'), fast).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ResultDownloadError);
    expect((err as Error).message).toMatch(/HTTP 404/);
    expect(hits.get('/gone')).toBe(1);
  });

  it('stops on abort with the signal reason', async () => {
    const ctrl = new AbortController();
    ctrl.abort(new Error('job canceled'));
    await expect(downloadResult(`${base}/out.png`, join(dir, 'j7', 'x.png'), { signal: ctrl.signal })).rejects.toThrow('job canceled');
  });
});
