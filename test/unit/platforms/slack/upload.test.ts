/**
 * Step 2 of Slack's external upload (postToUploadUrl): the file POSTed to the upload URL as
 * multipart/form-data, from the bytes in hand or from disk. From disk it is read in pieces
 * no larger than the file: a read never asks for more than what is left, so a small result gets
 * one buffer of its size and no extra read to find the end.
 */
import fs from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { postToUploadUrl, UploadRefusedError } from '../../../../src/platforms/slack/upload.ts';
import type { FileUpload } from '../../../../src/util/file-upload.ts';
import { MiB } from '../../../../src/util/units.ts';

describe('postToUploadUrl', () => {
  let dir: string;
  let origin: string;
  const received: { headers: IncomingHttpHeaders; body: Buffer }[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(200, { 'content-type': 'text/plain' }).end('OK');
    });
  });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'upload-'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  });
  afterEach(() => {
    vi.restoreAllMocks();
    received.length = 0;
  });

  /** The file part of a multipart body (what Slack stores). */
  const filePart = (body: Buffer, headers: IncomingHttpHeaders): Buffer => {
    const boundary = /boundary=(.+)$/.exec(String(headers['content-type']))![1]!;
    const start = body.indexOf('\r\n\r\n') + 4;
    const end = body.lastIndexOf(Buffer.from(`\r\n--${boundary}--\r\n`));
    return body.subarray(start, end);
  };

  it.each([
    ['a result of 300 KiB', 300 * 1024, [300 * 1024]],
    ['a result of 2.5 MiB', 2.5 * MiB, [MiB, MiB, 0.5 * MiB]],
  ])('%s from disk: sent whole, read in buffers no larger than what is left', async (_label, size, reads) => {
    const bytes = randomBytes(size);
    const path = join(dir, `${size}.png`);
    await writeFile(path, bytes);
    const read = vi.spyOn(fs, 'read');
    await postToUploadUrl({ uploadUrl: `${origin}/upload`, path, filename: 'a.png', mime: 'image/png', token: 'xoxb-test', apiUrl: `${origin}/api/` });
    expect(received).toHaveLength(1);
    const [{ headers, body }] = received as [{ headers: IncomingHttpHeaders; body: Buffer }];
    expect(Number(headers['content-length'])).toBe(body.length);
    expect(filePart(body, headers).equals(bytes)).toBe(true);
    // fs.read(fd, buffer, offset, length, position, callback): the buffers the stream asked to fill.
    expect(read.mock.calls.map((c) => (c[1] as unknown as Buffer).length)).toEqual(reads);
  });

  it('with an uploader (the results thread), the file goes to it and is not read here; the token only to Slack; a refusal is an UploadRefusedError', async () => {
    const read = vi.spyOn(fs, 'read');
    const asked: FileUpload[] = [];
    const uploader = async (u: FileUpload) => (asked.push(u), { status: asked.length === 1 ? 200 : 500, text: 'answer' });
    const common = { path: join(dir, 'x.png'), size: 10, filename: 'a.png', mime: 'image/png', token: 'xoxb-test', apiUrl: `${origin}/api/`, uploader };
    await postToUploadUrl({ ...common, uploadUrl: `${origin}/upload` });
    await expect(postToUploadUrl({ ...common, uploadUrl: 'https://uploads.example.com/u' })).rejects.toBeInstanceOf(UploadRefusedError);
    expect(asked).toMatchObject([
      { url: `${origin}/upload`, path: common.path, size: 10, filename: 'a.png', mime: 'image/png', headers: { authorization: 'Bearer xoxb-test' } },
      { url: 'https://uploads.example.com/u' },
    ]);
    expect(asked[1]!.headers).toBeUndefined();
    expect(read).not.toHaveBeenCalled();
    expect(received).toEqual([]);
  });

  it('bytes in hand are sent as they are, the file not read', async () => {
    const bytes = randomBytes(4096);
    const read = vi.spyOn(fs, 'read');
    await postToUploadUrl({ uploadUrl: `${origin}/upload`, path: join(dir, 'absent.png'), bytes, filename: 'a.png', mime: 'image/png', token: 'xoxb-test', apiUrl: `${origin}/api/` });
    const [{ headers, body }] = received as [{ headers: IncomingHttpHeaders; body: Buffer }];
    expect(filePart(body, headers).equals(bytes)).toBe(true);
    expect(read).not.toHaveBeenCalled();
  });
});
