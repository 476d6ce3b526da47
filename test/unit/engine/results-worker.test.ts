import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs, { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ResultDownloadError } from '../../../src/engine/errors.ts';
import type { Logger } from '../../../src/log.ts';
import { RecentResults } from '../../../src/engine/recent-results.ts';
import { RESULTS_THREAD_NICE, ResultsWorker } from '../../../src/engine/results-worker.ts';
import type { FileUpload } from '../../../src/util/file-upload.ts';

/**
 * The CDN runs on a thread of its own, so it keeps serving while a test holds the main thread:
 * /image.png (a 128×128 PNG of noise), /tiny.png (a 1×1 PNG, under Node's 4 KiB buffer pool),
 * /missing.png (404), /hang.png and /hang-2.png (half their declared body, then nothing); a POST
 * is read whole and answered 200 with its body in base64 (POST /refuse: 403 "no"; POST /hang:
 * read, never answered, and 'POST /hang' posted to the test once the body is in).
 */
const CDN = `
const { parentPort, workerData } = require('node:worker_threads');
const { createServer } = require('node:http');
const png = Buffer.from(workerData.png);
const tiny = Buffer.from(workerData.tiny);
const server = createServer((req, res) => {
  if (req.method === 'POST') {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/hang') return parentPort.postMessage('POST /hang');
      if (req.url === '/refuse') return res.writeHead(403).end('no');
      res.writeHead(200, { 'content-type': 'text/plain' }).end(Buffer.concat(chunks).toString('base64'));
    });
    return;
  }
  if (req.url === '/image.png') return res.writeHead(200, { 'content-type': 'image/png', 'content-length': png.length }).end(png);
  if (req.url === '/tiny.png') return res.writeHead(200, { 'content-type': 'image/png', 'content-length': tiny.length }).end(tiny);
  if (req.url === '/hang.png' || req.url === '/hang-2.png') return void res.writeHead(200, { 'content-type': 'image/png', 'content-length': png.length * 2 }).write(png);
  res.writeHead(404).end('not here');
});
server.listen(0, '127.0.0.1', () => parentPort.postMessage(server.address().port));
parentPort.on('message', () => { server.closeAllConnections(); server.close(() => process.exit(0)); });
`;

/**
 * Waits, without blocking the event loop, until `check` holds (or fails after 20 s: the thread
 * runs at nice 10, so beside a full test run on two cores it may take seconds to start).
 */
async function until(check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out waiting for a condition');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('ResultsWorker', () => {
  let cdn: Worker;
  let base: string;
  let dir: string;
  let png: Buffer;
  let tiny: Buffer;
  const results = new ResultsWorker();

  beforeAll(async () => {
    png = await sharp(randomBytes(128 * 128 * 3), { raw: { width: 128, height: 128, channels: 3 } }).png().toBuffer();
    tiny = await sharp({ create: { width: 1, height: 1, channels: 3, background: '#f80' } }).png().toBuffer();
    expect(png.length).toBeGreaterThan(4096);
    expect(tiny.length).toBeLessThan(4096);
    cdn = new Worker(CDN, { eval: true, workerData: { png, tiny } });
    const port = await new Promise<number>((resolve) => cdn.once('message', resolve));
    base = `http://127.0.0.1:${port}`;
    dir = await mkdtemp(join(tmpdir(), 'results-worker-'));
  });

  /**
   * The real thread program, and beside it a listener that ends the thread when asked for /die
   * (an exit) or /boom (an uncaught exception). Added once the program listens: the port holds
   * messages only until its first listener.
   */
  async function dyingProgram(): Promise<URL> {
    const program = join(dir, 'dying-thread.mjs');
    await writeFile(
      program,
      `import { parentPort } from 'node:worker_threads';
      await import(${JSON.stringify(new URL('../../../src/engine/results-thread.ts', import.meta.url).href)});
      parentPort.on('message', (m) => {
        if (m.url?.endsWith('/die')) process.exit(3);
        if (m.url?.endsWith('/boom')) throw new Error('boom');
      });`,
    );
    return pathToFileURL(program);
  }

  afterAll(async () => {
    await results.close();
    cdn.postMessage('close');
    await new Promise((r) => cdn.once('exit', r));
    await rm(dir, { recursive: true, force: true });
  });

  it('downloads on a thread of its own: the result is written while the main thread is busy', async () => {
    const dest = join(dir, 'busy', '0.png');
    const downloading = results.download(`${base}/image.png`, dest, {});
    // Hold the main thread (no event loop turn) until the file is in place.
    const deadline = Date.now() + 10_000;
    while (!existsSync(dest) && Date.now() < deadline);
    expect(existsSync(dest)).toBe(true);
    await expect(downloading).resolves.toEqual({ path: dest, sourceUrl: `${base}/image.png`, mime: 'image/png', bytes: png.length, width: 128, height: 128 });
    expect((await readFile(dest)).equals(png)).toBe(true);
    expect(results.inFlight).toBe(0);
  });

  it("hands the body's bytes to the RecentResults given, moved from the thread (transferred, not copied or shared), small bodies too", async () => {
    const keep = new RecentResults();
    for (const [name, bytes] of [
      ['image.png', png],
      ['tiny.png', tiny],
    ] as const) {
      const image = await results.download(`${base}/${name}`, join(dir, 'kept', name), { keep });
      const kept = keep.take(image.path);
      expect(kept?.equals(bytes)).toBe(true);
      // An ArrayBuffer the body fills (whether it was moved or copied cannot be seen from here:
      // `npm run bench -- results` measures that). Not shared memory: posted across threads that
      // way it was not given back while the bot ran (docs/benchmarks.md, "A result's way through the
      // bot").
      expect(kept?.buffer).toBeInstanceOf(ArrayBuffer);
      expect(kept?.buffer.byteLength).toBe(bytes.length);
    }
    // Not asked to keep them: nothing is sent back.
    await results.download(`${base}/image.png`, join(dir, 'kept', 'again.png'), {});
    expect(keep.bytes).toEqual({ held: 0, reserved: 0 });
  });

  it('fails as downloadResult does, leaving nothing on disk', async () => {
    const dest = join(dir, 'missing', '0.png');
    const failed = results.download(`${base}/missing.png`, dest, {});
    await expect(failed).rejects.toBeInstanceOf(ResultDownloadError);
    await expect(failed).rejects.toThrow(/HTTP 404/);
    expect(await readdir(join(dir, 'missing'))).toEqual([]);
  });

  it("stopped mid-body: rejects with the signal's reason once its temp file is gone", async () => {
    const folder = join(dir, 'stopped');
    const stop = new AbortController();
    const downloading = results.download(`${base}/hang.png`, join(folder, '0.png'), { signal: stop.signal });
    downloading.catch(() => undefined); // checked below; not unhandled if the wait fails
    await until(async () => existsSync(folder) && (await readdir(folder)).length > 0);
    const reason = new Error('the job was canceled');
    stop.abort(reason);
    await expect(downloading).rejects.toBe(reason);
    expect(await readdir(folder)).toEqual([]);
    expect(results.inFlight).toBe(0);
  });

  it.runIf(process.platform === 'linux')('runs below the main thread, and only it: a fresh process whose first file work is a download keeps every other thread at its priority', async () => {
    // A process of its own, so libuv's thread pool is first used by the results thread.
    const program = `
      import { readdirSync, readFileSync } from 'node:fs';
      import { ResultsWorker } from ${JSON.stringify(new URL('../../../src/engine/results-worker.ts', import.meta.url).href)};
      const nices = () => readdirSync('/proc/self/task').map((tid) => {
        const stat = readFileSync('/proc/self/task/' + tid + '/stat', 'utf8');
        return { tid: Number(tid), nice: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]) };
      });
      const results = new ResultsWorker();
      results.start();
      await results.download(process.argv[2], process.argv[3], {});
      console.log(JSON.stringify({ pid: process.pid, threads: nices() }));
      await results.close();
    `;
    // A file, not --eval: the thread inherits the process's options, and --input-type is --eval's alone.
    const file = join(dir, 'nice-child.mjs');
    await writeFile(file, program);
    const child = spawn(process.execPath, [file, `${base}/image.png`, join(dir, 'nice', '0.png')], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    expect(await new Promise((r) => child.on('exit', r))).toBe(0);
    const { pid, threads } = JSON.parse(out) as { pid: number; threads: { tid: number; nice: number }[] };
    const main = threads.find((t) => t.tid === pid)!.nice;
    expect(RESULTS_THREAD_NICE).toBeGreaterThan(main);
    expect(threads.filter((t) => t.nice === RESULTS_THREAD_NICE)).toHaveLength(1);
    expect(threads.filter((t) => t.nice !== main && t.nice !== RESULTS_THREAD_NICE)).toEqual([]);
    expect(threads.length).toBeGreaterThan(5); // the main thread, V8's, libuv's pool, the results thread
  });

  it('close() stops the downloads still running (their temp files removed) and fails them, and later ones', async () => {
    const own = new ResultsWorker();
    const folder = join(dir, 'closed');
    const downloading = own.download(`${base}/hang.png`, join(folder, '0.png'), {});
    downloading.catch(() => undefined); // checked below; not unhandled if the wait fails
    await until(async () => existsSync(folder) && (await readdir(folder)).length > 0);
    const failed = expect(downloading).rejects.toThrow(new ResultDownloadError('the bot is stopping'));
    await own.close();
    await failed;
    expect(await readdir(folder)).toEqual([]);
    await expect(own.download(`${base}/image.png`, join(folder, '1.png'), {})).rejects.toThrow(/stopping/);
  });

  it.each([
    ['exits', '/die', 'exit code 3'],
    ['throws', '/boom', 'boom'],
  ])('a thread that %s fails the downloads it was running, once their temp files are removed; the next download starts a new thread', async (how, route, why) => {
    const logged: unknown[] = [];
    const own = new ResultsWorker({ program: await dyingProgram(), log: { error: (...args: unknown[]) => logged.push(args) } as unknown as Logger });
    try {
      const folder = join(dir, `died-${how}`);
      const running = [own.download(`${base}/hang.png`, join(folder, '0.png'), {}), own.download(`${base}/hang-2.png`, join(folder, '1.png'), {})];
      const settled = Promise.allSettled(running); // handled now, whatever happens below
      await until(async () => existsSync(folder) && (await readdir(folder)).length === 2);
      // Another process's download of the same result (a takeover; DATA_DIR is shared) is not ours to remove.
      await writeFile(join(folder, '0.png.0123456789ab.part'), 'theirs');
      const failed = Promise.allSettled([own.download(`${base}${route}`, join(folder, '2.png'), {})]);
      for (const outcome of [...(await settled), ...(await failed)]) {
        expect(outcome.status).toBe('rejected');
        expect((outcome as PromiseRejectedResult).reason).toEqual(new ResultDownloadError(`the results thread stopped: ${why}`));
      }
      expect(await readdir(folder)).toEqual(['0.png.0123456789ab.part']);
      expect(logged).toHaveLength(1);
      expect(own.inFlight).toBe(0);

      await expect(own.download(`${base}/image.png`, join(folder, '3.png'), {})).resolves.toMatchObject({ bytes: png.length });
      expect((await readdir(folder)).sort()).toEqual(['0.png.0123456789ab.part', '3.png']);
    } finally {
      await own.close();
    }
  });

  it('a thread one of whose answers could not be read is let go: its downloads fail once their temp files are removed, the next starts a new thread', async () => {
    // Node emits 'messageerror' when a message from the thread cannot be deserialized; nothing a
    // healthy results thread posts does that, so the event is raised on the Worker here.
    const started: Worker[] = [];
    const original = Worker.prototype.on;
    const on = vi.spyOn(Worker.prototype, 'on').mockImplementation(function (this: Worker, event: string | symbol, listener: Parameters<typeof original>[1]) {
      if (event === 'messageerror') started.push(this);
      return original.call(this, event, listener);
    });
    const logged: unknown[] = [];
    const own = new ResultsWorker({ log: { error: (...args: unknown[]) => logged.push(args) } as unknown as Logger });
    try {
      const folder = join(dir, 'unreadable');
      const running = own.download(`${base}/hang.png`, join(folder, '0.png'), {});
      const settled = Promise.allSettled([running]);
      await until(async () => existsSync(folder) && (await readdir(folder)).length === 1);
      expect(started).toHaveLength(1);
      started[0]!.emit('messageerror', new Error('could not deserialize'));
      const [outcome] = await settled;
      expect((outcome as PromiseRejectedResult).reason).toEqual(new ResultDownloadError('the results thread stopped: an answer could not be read: could not deserialize'));
      expect(await readdir(folder)).toEqual([]);
      expect(logged).toHaveLength(1);
      await expect(own.download(`${base}/image.png`, join(folder, '1.png'), {})).resolves.toMatchObject({ bytes: png.length });
      expect(started).toHaveLength(2);
    } finally {
      on.mockRestore();
      await own.close();
    }
  });

  it("close() right after the thread died returns once that death's temp files are gone; a second close() is the same one", async () => {
    const own = new ResultsWorker({ program: await dyingProgram() });
    const folder = join(dir, 'died-closed');
    const running = [own.download(`${base}/hang.png`, join(folder, '0.png'), {}), own.download(`${base}/hang-2.png`, join(folder, '1.png'), {})];
    const settled = Promise.allSettled(running);
    await until(async () => existsSync(folder) && (await readdir(folder)).length === 2);
    const dying = own.download(`${base}/die`, join(folder, '2.png'), {});
    dying.catch(() => undefined);
    await until(() => own.inFlight === 0); // the death is seen: its cleanup has begun
    const closing = own.close();
    expect(own.close()).toBe(closing);
    await closing;
    expect(await readdir(folder)).toEqual([]);
    expect((await settled).map((o) => o.status)).toEqual(['rejected', 'rejected']);
  });

  /** The file part of a multipart/form-data body with one field. */
  const filePart = (body: Buffer): Buffer => body.subarray(body.indexOf('\r\n\r\n') + 4, body.lastIndexOf('\r\n--'));
  const upload = (path: string, route = '/upload'): FileUpload => ({ url: `${base}${route}`, path, filename: 'a.png', mime: 'image/png', headers: { authorization: 'Bearer xoxb-test' }, timeoutMs: 120_000 });

  it('uploads a file from the thread, which reads it: the body arrives whole, and the answer comes back for the caller to judge', async () => {
    const path = join(dir, 'upload.png');
    await writeFile(path, png);
    const read = vi.spyOn(fs, 'read');
    try {
      const answer = await results.upload(upload(path));
      expect(answer.status).toBe(200);
      expect(filePart(Buffer.from(answer.text, 'base64')).equals(png)).toBe(true);
      // Read there, not here.
      expect(read).not.toHaveBeenCalled();
      await expect(results.upload(upload(path, '/refuse'))).resolves.toEqual({ status: 403, text: 'no' });
      // Nothing listening: the network error, with its code; no answer in time: undici's error, by name and code.
      await expect(results.upload({ ...upload(path), url: 'http://127.0.0.1:1/upload' })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      await expect(results.upload({ ...upload(path, '/hang'), timeoutMs: 200 })).rejects.toMatchObject({ name: 'HeadersTimeoutError', code: 'UND_ERR_HEADERS_TIMEOUT' });
    } finally {
      read.mockRestore();
    }
    expect(results.inFlight).toBe(0);
  });

  it("names the file after its content, whatever the name asked for said: a PNG asked for as .jpg is written, and kept, as .png", async () => {
    const keep = new RecentResults();
    const image = await results.download(`${base}/image.png`, join(dir, 'named', '0.jpg'), { keep });
    expect(image.path).toBe(join(dir, 'named', '0.png'));
    expect((await readFile(image.path)).equals(png)).toBe(true);
    expect(await readdir(join(dir, 'named'))).toEqual(['0.png']);
    expect(keep.take(image.path)?.equals(png)).toBe(true);
  });

  it('an upload whose thread dies, or that close() stops, fails with the same words as a download, but not as a failed download', async () => {
    const path = join(dir, 'upload-dies.png');
    await writeFile(path, png);
    const own = new ResultsWorker({ program: await dyingProgram() });
    try {
      const uploading = own.upload(upload(path, '/hang'));
      const died = Promise.allSettled([uploading, own.download(`${base}/die`, join(dir, 'upload-dies', '0.png'), {})]);
      const [outcome] = await died;
      expect(outcome.status).toBe('rejected');
      const reason = (outcome as PromiseRejectedResult).reason as Error;
      expect(reason.message).toBe('the results thread stopped: exit code 3');
      expect(reason).not.toBeInstanceOf(ResultDownloadError);

      const arrived = once(cdn, 'message');
      const stopped = own.upload(upload(path, '/hang'));
      stopped.catch(() => undefined); // checked below
      expect(await arrived).toEqual(['POST /hang']);
      // The thread stops the upload itself: close() returns without waiting out its grace of a minute.
      const closed = own.close(60_000).then(() => 'closed');
      expect(await Promise.race([closed, new Promise((r) => setTimeout(r, 20_000, 'still waiting'))])).toBe('closed');
      await expect(stopped).rejects.toThrow('the bot is stopping');
      await expect(stopped).rejects.not.toBeInstanceOf(ResultDownloadError);
      await expect(own.upload(upload(path))).rejects.toThrow('the bot is stopping');
    } finally {
      await own.close();
    }
  });

  it('keeps no process alive: a process that started it and downloaded ends on its own', async () => {
    const program = join(dir, 'idle-child.mjs');
    await writeFile(
      program,
      `import { ResultsWorker } from ${JSON.stringify(new URL('../../../src/engine/results-worker.ts', import.meta.url).href)};
      const results = new ResultsWorker();
      results.start();
      await results.download(process.argv[2], process.argv[3], {});
      console.log('downloaded');`,
    );
    const child = spawn(process.execPath, [program, `${base}/image.png`, join(dir, 'idle', '0.png')], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const kill = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const [code, signal] = await new Promise<[number | null, string | null]>((r) => child.on('exit', (c, s) => r([c, s])));
    clearTimeout(kill);
    expect(out.trim()).toBe('downloaded');
    expect({ code, signal }).toEqual({ code: 0, signal: null });
  });
});
