import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import type { Dispatcher } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ReferenceError } from '../../../src/engine/errors.ts';
import { RUNBASE_TRAITS } from '../../../src/providers/runbase/client.ts';
import { RUNBLOB_TRAITS } from '../../../src/providers/runblob/client.ts';
import { createGuardedDispatcher } from '../../../src/engine/net-guard.ts';
import { ReferenceHost } from '../../../src/engine/reference-host.ts';
import { fetchReferences, toProviderReferences, type PreparedReference } from '../../../src/engine/references.ts';

const MB = 1024 * 1024;

describe('references', () => {
  let server: Server;
  let base: string;
  let root: string;
  let dir: string;
  let png: Buffer;
  let webp: Buffer;
  const hits = new Map<string, number>();
  let bigSent = 0;
  let bigClosedEarly = false;
  const dispatchers: Dispatcher[] = [];
  const ALLOW = ['127.0.0.1'];
  const guarded = (allowHosts: string[]) => {
    const d = createGuardedDispatcher({ allowHosts });
    dispatchers.push(d);
    return d;
  };
  const opts = (extra: Partial<Parameters<typeof fetchReferences>[1]> = {}) => ({
    dir,
    maxCount: 4,
    dispatcher: guarded(ALLOW),
    allowHosts: ALLOW,
    ...extra,
  });
  const problem = async (p: Promise<unknown>) => {
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReferenceError);
    return err as ReferenceError;
  };

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'refs-'));
    png = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#123' } }).png().toBuffer();
    webp = await sharp({ create: { width: 32, height: 32, channels: 3, background: '#456' } }).webp().toBuffer();
    server = createServer((req, res) => {
      const path = req.url ?? '/';
      hits.set(path, (hits.get(path) ?? 0) + 1);
      if (path === '/cat.txt') return void res.writeHead(200, { 'content-type': 'text/plain' }).end(png); // a PNG in disguise
      if (path === '/photo.webp') return void res.writeHead(200, { 'content-type': 'image/webp' }).end(webp);
      if (path === '/page.png') return void res.writeHead(200, { 'content-type': 'image/png' }).end('<!doctype html><h1>login</h1>');
      if (path === '/missing.png') return void res.writeHead(404).end();
      if (path === '/to-cat') return void res.writeHead(301, { location: '/cat.txt' }).end();
      if (path === '/to-private') return void res.writeHead(302, { location: 'http://10.0.0.7/admin.png' }).end();
      if (path === '/declared-huge.png') {
        res.writeHead(200, { 'content-type': 'image/png', 'content-length': String(30 * MB) });
        res.write(png.subarray(0, 100));
        return; // never finishes: the client must give up on the header alone
      }
      if (path === '/endless.png') {
        res.writeHead(200, { 'content-type': 'image/png' });
        const chunk = Buffer.concat([png.subarray(0, 64), Buffer.alloc(256 * 1024 - 64)]);
        const pump = () => {
          while (bigSent < 100 * MB) {
            bigSent += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        res.on('close', () => (bigClosedEarly = bigSent < 100 * MB));
        return pump();
      }
      if (path === '/slow.png') return; // never answers
      res.writeHead(500).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await Promise.all(dispatchers.map((d) => d.destroy()));
    await rm(root, { recursive: true, force: true });
  });
  beforeAll(() => {
    dir = join(root, 'job');
  });

  it('refuses more references than the model takes', async () => {
    const refs = Array.from({ length: 5 }, () => ({ kind: 'url' as const, url: `${base}/cat.txt` }));
    const err = await problem(fetchReferences(refs, opts({ maxCount: 4 })));
    expect(err.problem).toBe('too_many');
    expect(err.userMessage).toMatch(/this model takes at most 4/);
    expect(hits.get('/cat.txt')).toBeUndefined();
  });

  it('refuses 127.0.0.1 without an allow-list entry, before and at connection time', async () => {
    const noAllow = await problem(fetchReferences([{ kind: 'url', url: `${base}/cat.txt` }], opts({ allowHosts: [], dispatcher: guarded([]) })));
    expect(noAllow.problem).toBe('forbidden_address');
    // Even if the up-front check were passed, the dispatcher itself refuses to connect.
    const dispatcherOnly = await problem(fetchReferences([{ kind: 'url', url: `${base}/cat.txt` }], opts({ dispatcher: guarded([]) })));
    expect(dispatcherOnly.problem).toBe('forbidden_address');
    expect(hits.get('/cat.txt')).toBeUndefined();
  });

  it('downloads allow-listed URLs in parallel and types them by content, not name or Content-Type', async () => {
    const got = await fetchReferences(
      [
        { kind: 'url', url: `${base}/cat.txt`, name: 'cat.txt' },
        { kind: 'url', url: `${base}/photo.webp` },
      ],
      opts(),
    );
    expect(got).toHaveLength(2);
    expect(got[0]).toMatchObject({ index: 0, mime: 'image/png', bytes: png.length, name: 'cat.txt', sourceUrl: `${base}/cat.txt` });
    expect(got[0]!.path.endsWith('.png')).toBe(true);
    expect(Buffer.compare(await readFile(got[0]!.path), png)).toBe(0);
    expect(got[1]).toMatchObject({ index: 1, mime: 'image/webp', bytes: webp.length });
  });

  it('refuses content that is not an image, naming the reference', async () => {
    const err = await problem(fetchReferences([{ kind: 'url', url: `${base}/cat.txt` }, { kind: 'url', url: `${base}/page.png`, name: 'page.png' }], opts()));
    expect(err.problem).toBe('not_an_image');
    expect(err.index).toBe(1);
    expect(err.userMessage).toBe('Reference image 2 (page.png) is not a JPEG, PNG or WEBP image. Attach one of those formats.');
    expect(await readdir(dir)).toEqual([]); // the good download was cleaned up too
  });

  it('aborts a stream that goes past 20 MB', async () => {
    const err = await problem(fetchReferences([{ kind: 'url', url: `${base}/endless.png` }], opts()));
    expect(err.problem).toBe('too_large');
    await new Promise((r) => setTimeout(r, 50));
    expect(bigClosedEarly).toBe(true);
    expect(bigSent).toBeLessThan(40 * MB);
    expect(await readdir(dir)).toEqual([]);
  });

  it('refuses a declared Content-Length over the cap without reading the body', async () => {
    const err = await problem(fetchReferences([{ kind: 'url', url: `${base}/declared-huge.png` }], opts()));
    expect(err.problem).toBe('too_large');
  });

  it('reports HTTP errors and timeouts as unreachable', async () => {
    const missing = await problem(fetchReferences([{ kind: 'url', url: `${base}/missing.png` }], opts()));
    expect(missing.problem).toBe('unreachable');
    expect(missing.userMessage).toMatch(/HTTP 404/);
    const slow = await problem(fetchReferences([{ kind: 'url', url: `${base}/slow.png` }], opts({ timeoutMs: 200 })));
    expect(slow.problem).toBe('unreachable');
    expect(slow.userMessage).toMatch(/timed out/);
  });

  it('follows redirects but re-checks each hop', async () => {
    const [ok] = await fetchReferences([{ kind: 'url', url: `${base}/to-cat` }], opts());
    expect(ok).toMatchObject({ mime: 'image/png', sourceUrl: `${base}/to-cat` });
    const err = await problem(fetchReferences([{ kind: 'url', url: `${base}/to-private` }], opts()));
    expect(err.problem).toBe('forbidden_address');
  });

  it('checks local files by content and uses an on-disk copy of a URL reference', async () => {
    const local = join(root, 'upload.bin');
    const text = join(root, 'notes.png');
    await writeFile(local, webp);
    await writeFile(text, 'hello');
    const [file, copy] = await fetchReferences(
      [
        { kind: 'file', path: local, name: 'upload.bin' },
        { kind: 'url', url: `${base}/never-fetched.png`, localPath: local },
      ],
      opts(),
    );
    expect(file).toMatchObject({ index: 0, path: local, mime: 'image/webp', bytes: webp.length, name: 'upload.bin' });
    expect(copy).toMatchObject({ index: 1, path: local, mime: 'image/webp', sourceUrl: `${base}/never-fetched.png` });
    expect(hits.get('/never-fetched.png')).toBeUndefined();
    const err = await problem(fetchReferences([{ kind: 'file', path: text }], opts()));
    expect(err.problem).toBe('not_an_image');
  });

  describe('toProviderReferences', () => {
    let prepared: PreparedReference[];
    beforeAll(async () => {
      const path = join(root, 'prepared.png');
      await writeFile(path, png);
      prepared = [
        { index: 0, path, mime: 'image/png', bytes: png.length, sourceUrl: 'https://cdn.example.com/a.png' },
        { index: 1, path, mime: 'image/png', bytes: png.length, name: 'private.png' },
      ];
    });

    it('sends RunBlob base64 data URLs of the exact bytes', async () => {
      const out = await toProviderReferences(prepared, RUNBLOB_TRAITS.inlineReferences, undefined);
      expect(out).toHaveLength(2);
      const first = out[0]!;
      expect(first.kind).toBe('data');
      if (first.kind !== 'data') return;
      expect(first.dataUrl.startsWith('data:image/png;base64,')).toBe(true);
      expect(Buffer.compare(Buffer.from(first.dataUrl.split(',')[1]!, 'base64'), png)).toBe(0);
    });

    it('encodes files larger than one read chunk correctly', async () => {
      const path = join(root, 'big.bin');
      const bytes = Buffer.alloc(1_000_003);
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31) & 0xff;
      await writeFile(path, bytes);
      const [out] = await toProviderReferences([{ index: 0, path, mime: 'image/jpeg', bytes: bytes.length }], RUNBLOB_TRAITS.inlineReferences, undefined);
      expect(out).toEqual({ kind: 'data', dataUrl: `data:image/jpeg;base64,${bytes.toString('base64')}` });
    });

    it.each([
      ['opaque', 3, 'image/jpeg'],
      ['transparent', 4, 'image/webp'],
    ] as const)(
      'accepts a file (%s) between 20,000,000 bytes and 20 MiB, and inlines it for RunBlob re-encoded under 20,000,000 bytes',
      async (_label, channels, mime) => {
        // Stored without compression, so the file size is set by the pixel count.
        const side = channels === 3 ? 2600 : 2250;
        const tile = Buffer.from(Array.from({ length: 997 }, (_, i) => (i * 37) & 0xff));
        const raw = Buffer.alloc(side * side * channels, tile);
        const big = await sharp(raw, { raw: { width: side, height: side, channels } }).png({ compressionLevel: 0 }).toBuffer();
        expect(big.length).toBeGreaterThan(20_000_000);
        expect(big.length).toBeLessThanOrEqual(20 * MB);
        const path = join(root, `between-${channels}.png`);
        await writeFile(path, big);
        const [ref] = await fetchReferences([{ kind: 'file', path }], opts());
        expect(ref).toMatchObject({ mime: 'image/png', bytes: big.length });
        const [out] = await toProviderReferences([ref!], RUNBLOB_TRAITS.inlineReferences, undefined);
        if (out?.kind !== 'data') throw new Error('expected a data URL');
        expect(out.dataUrl.startsWith(`data:${mime};base64,`)).toBe(true);
        const sent = Buffer.from(out.dataUrl.split(',')[1]!, 'base64');
        expect(sent.length).toBeLessThanOrEqual(20_000_000);
        const meta = await sharp(sent).metadata();
        expect([meta.width, meta.height, meta.hasAlpha]).toEqual([side, side, channels === 4]);
        // The user's file is untouched and nothing is left beside it.
        expect(await readdir(root)).not.toContainEqual(expect.stringMatching(/^between-.*\.(jpg|webp)$/));
      },
      30_000,
    );

    it('names the reference when an image over 20,000,000 bytes cannot be re-encoded for RunBlob', async () => {
      const path = join(root, 'corrupt-big.png');
      await writeFile(path, Buffer.concat([png.subarray(0, 33), Buffer.alloc(20_100_000)]));
      const err = await problem(toProviderReferences([{ index: 2, path, mime: 'image/png', bytes: 20_100_033, name: 'scan.png' }], RUNBLOB_TRAITS.inlineReferences, undefined));
      expect(err).toMatchObject({ index: 2, problem: 'too_large' });
      expect(err.userMessage).toContain('scan.png');
    });

    it('gives Runbase the public URL, else a short-lived link from the bot, else a clear error', async () => {
      const host = new ReferenceHost({ publicUrl: 'https://bot.example.com/' });
      const out = await toProviderReferences(prepared, RUNBASE_TRAITS.inlineReferences, host);
      expect(out[0]).toEqual({ kind: 'url', url: 'https://cdn.example.com/a.png' });
      expect(out[1]?.kind === 'url' && out[1].url).toMatch(/^https:\/\/bot\.example\.com\/refs\/[A-Za-z0-9_-]{43,}$/);
      const err = await problem(toProviderReferences(prepared, RUNBASE_TRAITS.inlineReferences, undefined));
      expect(err.problem).toBe('needs_public_url');
      expect(err.index).toBe(1);
      expect(err.userMessage).toMatch(/PUBLIC_URL/);
    });

    it('does not hand Runbase a private URL unless it is allow-listed', async () => {
      const local = [{ index: 0, path: prepared[0]!.path, mime: 'image/png', bytes: png.length, sourceUrl: `${base}/cat.txt` }];
      await expect(toProviderReferences(local, RUNBASE_TRAITS.inlineReferences, undefined)).rejects.toBeInstanceOf(ReferenceError);
      await expect(toProviderReferences(local, RUNBASE_TRAITS.inlineReferences, undefined, { allowHosts: ALLOW })).resolves.toEqual([
        { kind: 'url', url: `${base}/cat.txt` },
      ]);
    });
  });
});
