import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/log.ts';
import { mountFiles, startHttpServer, type HttpServer } from '../../../src/platforms/http/server.ts';
import { REFERENCE_PATH_PREFIX, ReferenceHost } from '../../../src/engine/reference-host.ts';

describe('ReferenceHost', () => {
  let http: HttpServer;
  let dir: string;
  let file: string;
  const bytes = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) & 0xff));
  let now = 1_000_000;
  let host: ReferenceHost;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'refhost-'));
    file = join(dir, 'ref.jpg');
    await writeFile(file, bytes);
    http = await startHttpServer(0, createLogger({ level: 'silent', destination: { write: () => undefined } }), '127.0.0.1');
    host = new ReferenceHost({ publicUrl: `${http.localUrl}/`, ttlMs: 60_000, now: () => now });
    // As src/app.ts mounts it.
    mountFiles(http, REFERENCE_PATH_PREFIX, host.lookup);
  });
  afterAll(async () => {
    await http.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('publishes a file at an unguessable URL and streams it', async () => {
    const url = host.publish(file, 'image/jpeg');
    const token = url.slice(`${http.localUrl}/refs/`.length);
    expect(url.startsWith(`${http.localUrl}/refs/`)).toBe(true);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/); // 32 random bytes, base64url
    expect(host.publish(file, 'image/jpeg')).not.toBe(url);
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/jpeg');
    expect(res.headers.get('content-length')).toBe(String(bytes.length));
    expect(Buffer.compare(Buffer.from(await res.arrayBuffer()), bytes)).toBe(0);
    const head = await fetch(url, { method: 'HEAD' });
    expect(head.status).toBe(200);
  });

  it('answers 404 for unknown tokens and after expiry', async () => {
    const url = host.publish(file, 'image/jpeg');
    expect((await fetch(`${http.localUrl}/refs/${'A'.repeat(43)}`)).status).toBe(404);
    expect((await fetch(`${http.localUrl}/refs/`)).status).toBe(404);
    now += 59_000;
    expect((await fetch(url)).status).toBe(200);
    now += 2_000;
    expect((await fetch(url)).status).toBe(404);
    expect(host.size).toBe(0);
  });

  it('looks a token up until it expires', () => {
    const url = host.publish(file, 'image/png');
    const token = url.slice(url.lastIndexOf('/') + 1);
    expect(host.lookup(token)).toEqual({ path: file, mime: 'image/png' });
    expect(host.lookup('A'.repeat(43))).toBeUndefined();
    now += 60_000;
    expect(host.lookup(token)).toBeUndefined();
  });

  it('answers 404 when the file is gone', async () => {
    const gone = join(dir, 'deleted.png');
    await writeFile(gone, 'x');
    const url = host.publish(gone, 'image/png');
    await rm(gone);
    expect((await fetch(url)).status).toBe(404);
  });
});
