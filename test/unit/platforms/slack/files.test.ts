import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ReferenceError } from '../../../../src/engine/errors.ts';
import { downloadSlackFiles, isSlackFileUrl } from '../../../../src/platforms/slack/files.ts';
import { startFakeSlack, type FakeSlack } from '../../../fakes/slack/fake-slack.ts';

let fake: FakeSlack;
let dir: string;
beforeAll(async () => {
  fake = await startFakeSlack();
  dir = await mkdtemp(join(tmpdir(), 'slack-files-'));
});
afterAll(async () => {
  await fake.close();
  await rm(dir, { recursive: true, force: true });
});

describe('downloading Slack private files', () => {
  test('fetches url_private with the bot token into a fresh directory, in order, byte for byte', async () => {
    const a = fake.addUserFile({ name: 'a b.png', mimetype: 'image/png', bytes: Buffer.from('first'), user: 'U1' });
    const b = fake.addUserFile({ name: 'b.jpg', mimetype: 'image/jpeg', bytes: Buffer.from('second'), user: 'U1' });
    const { references, dir: out } = await downloadSlackFiles(
      [
        { id: a.id, name: a.name, url: a.url_private },
        { id: b.id, name: b.name, url: b.url_private_download },
      ],
      { token: fake.botToken, apiUrl: fake.apiUrl, dir },
    );
    expect(references.map((r) => r.kind)).toEqual(['file', 'file']);
    const paths = references.map((r) => (r.kind === 'file' ? r.path : ''));
    expect((await Promise.all(paths.map((p) => readFile(p, 'utf8'))))).toEqual(['first', 'second']);
    expect(paths.every((p) => p.startsWith(out!))).toBe(true);
    expect(references[0]).toMatchObject({ name: 'a b.png' });
    expect(fake.refusedDownloads).toEqual([]);
  });

  test('looks up a URL with files.info-like lookup when private_metadata had no room for it', async () => {
    const f = fake.addUserFile({ name: 'c.png', mimetype: 'image/png', bytes: Buffer.from('third'), user: 'U1' });
    const { references } = await downloadSlackFiles([{ id: f.id }], {
      token: fake.botToken,
      apiUrl: fake.apiUrl,
      dir,
      lookupUrl: async (id) => ({ url: fake.files.get(id)!.url_private, name: 'c.png' }),
    });
    expect(references[0]).toMatchObject({ kind: 'file', name: 'c.png' });
  });

  test('a file over the cap fails naming the image, and leaves nothing behind', async () => {
    const small = fake.addUserFile({ name: 'ok.png', mimetype: 'image/png', bytes: Buffer.alloc(10), user: 'U1' });
    const big = fake.addUserFile({ name: 'big.png', mimetype: 'image/png', bytes: Buffer.alloc(2048), user: 'U1' });
    const before = await readdir(dir);
    const err = await downloadSlackFiles(
      [
        { id: small.id, url: small.url_private },
        { id: big.id, name: 'big.png', url: big.url_private },
      ],
      { token: fake.botToken, apiUrl: fake.apiUrl, dir, maxBytes: 1024 },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReferenceError);
    expect((err as ReferenceError).userMessage).toBe('Reference image 2 (big.png) is larger than 20 MB. Use a smaller image.');
    expect(await readdir(dir)).toEqual(before);
  });

  test('a refused download (wrong token) is an unreachable reference, not a crash', async () => {
    const f = fake.addUserFile({ name: 'd.png', mimetype: 'image/png', bytes: Buffer.from('x'), user: 'U1' });
    const err = await downloadSlackFiles([{ id: f.id, url: f.url_private }], { token: 'xoxb-wrong', apiUrl: fake.apiUrl, dir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReferenceError);
    expect((err as ReferenceError).problem).toBe('unreachable');
    expect(fake.refusedDownloads).toHaveLength(1);
  });

  test('the bot token only ever goes to Slack file hosts (or the configured API host)', async () => {
    expect(isSlackFileUrl('https://files.slack.com/files-pri/T1-F1/a.png', 'https://slack.com/api/')).toBe(true);
    expect(isSlackFileUrl('https://evil.example.com/files-pri/a.png', 'https://slack.com/api/')).toBe(false);
    expect(isSlackFileUrl('http://files.slack.com/a.png', 'https://slack.com/api/')).toBe(false);
    expect(isSlackFileUrl('https://slack.com.evil.io/a.png', 'https://slack.com/api/')).toBe(false);
    expect(isSlackFileUrl(`${fake.url}/files-pri/x`, fake.apiUrl)).toBe(true);
    const err = await downloadSlackFiles([{ id: 'F1', url: 'https://evil.example.com/a.png' }], { token: fake.botToken, apiUrl: fake.apiUrl, dir }).catch((e: unknown) => e);
    expect((err as ReferenceError).problem).toBe('unreachable');
  });

  test('a Slack-like server on loopback may serve files from another port or as localhost; other hosts still never get the token', () => {
    expect(isSlackFileUrl('http://localhost:4000/files/a.png', 'http://127.0.0.1:3000/api/')).toBe(true);
    expect(isSlackFileUrl('http://127.0.0.1:4000/files/a.png', 'http://127.0.0.1:3000/api/')).toBe(true);
    expect(isSlackFileUrl('https://slack.com:8443/files/a.png', 'https://slack.com/api/')).toBe(true);
    expect(isSlackFileUrl('http://10.0.0.5/files/a.png', 'http://127.0.0.1:3000/api/')).toBe(false);
    expect(isSlackFileUrl('http://127.0.0.1:4000/files/a.png', 'https://slack.com/api/')).toBe(false);
  });

  test('follows redirects between Slack hosts with the token; a redirect elsewhere or a sign-in page means the bot cannot see the file', async () => {
    const seen: { path: string; headers: IncomingHttpHeaders }[] = [];
    const server = createServer((req, res) => {
      seen.push({ path: req.url ?? '', headers: req.headers });
      if (req.url === '/files-pri/moved.png') res.writeHead(302, { location: '/files-tmb/real.png' }).end();
      else if (req.url === '/files-tmb/real.png') res.writeHead(200, { 'content-type': 'image/png' }).end('PNGBYTES');
      else if (req.url === '/files-pri/away.png') res.writeHead(302, { location: 'http://10.1.2.3/steal' }).end();
      else if (req.url === '/files-pri/login.png') res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<html>sign in</html>');
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const base = `http://localhost:${(server.address() as AddressInfo).port}`;
    const apiUrl = 'http://127.0.0.1:1/api/';
    try {
      const { references } = await downloadSlackFiles([{ id: 'F1', name: 'moved.png', url: `${base}/files-pri/moved.png` }], { token: 'xoxb-t', apiUrl, dir });
      expect(await readFile(references[0]!.kind === 'file' ? references[0]!.path : '', 'utf8')).toBe('PNGBYTES');
      expect(seen.map((r) => [r.path, r.headers.authorization])).toEqual([
        ['/files-pri/moved.png', 'Bearer xoxb-t'],
        ['/files-tmb/real.png', 'Bearer xoxb-t'],
      ]);
      for (const name of ['away.png', 'login.png']) {
        const err = await downloadSlackFiles([{ id: 'F2', name, url: `${base}/files-pri/${name}` }], { token: 'xoxb-t', apiUrl, dir }).catch((e: unknown) => e);
        expect((err as ReferenceError).userMessage, name).toMatch(/may not see this file/);
      }
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
