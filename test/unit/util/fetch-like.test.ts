/**
 * src/util/fetch-like.ts against a real HTTP server: an answer's repeated header reaches the
 * clients joined as `fetch` joins it, by any case of its name; the body is read once, whatever
 * asks for it.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { fetchLikeAnswer, flatHeaders } from '../../../src/util/fetch-like.ts';

const server = createServer((_req, res) => {
  res.setHeader('x-seen', ['a', 'b']);
  res.writeHead(429, { 'content-type': 'application/json' });
  res.end('{"ok":false}');
});
let url = '';
beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('fetchLikeAnswer', () => {
  it("gives an answer's status, headers (a repeated one joined, any case) and body as fetch would", async () => {
    const res = await request(url);
    const fetched = await fetch(url);
    const answer = fetchLikeAnswer(res);

    expect([answer.ok, answer.status, answer.statusText]).toEqual([fetched.ok, fetched.status, fetched.statusText]);
    expect(answer.headers.get('X-Seen')).toBe(fetched.headers.get('X-Seen'));
    expect(answer.headers.get('x-seen')).toBe('a, b');
    expect([answer.headers.has('Content-Type'), answer.headers.has('x-missing'), answer.headers.get('x-missing')]).toEqual([true, false, null]);
    expect(await answer.json()).toEqual(await fetched.json());
    expect(await answer.text()).toBe('{"ok":false}');
  });

  it('flatHeaders gives the same joined values as a plain object', async () => {
    const res = await request(url);
    await res.body.dump();
    expect(flatHeaders(res.headers)).toMatchObject({ 'x-seen': 'a, b', 'content-type': 'application/json' });
  });
});
