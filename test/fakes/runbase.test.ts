/**
 * Tests of the fake Runbase itself: it must hold clients to docs/providers.md, so each test
 * checks what a client would see on the wire.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { Agent, request } from 'undici';
import { RUNBASE_DEFAULT_KEY, startFakeRunbase, type FakeRunbase, type FakeRunbaseOptions } from './runbase.ts';

const fakes: FakeRunbase[] = [];
afterEach(async () => {
  await Promise.all(fakes.splice(0).map((fake) => fake.close()));
});

async function start(opts: FakeRunbaseOptions = {}): Promise<FakeRunbase> {
  const fake = await startFakeRunbase(opts);
  fakes.push(fake);
  return fake;
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: unknown;
}

async function call(
  fake: FakeRunbase,
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  options: { body?: unknown; rawBody?: string; key?: string | null } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  const key = options.key === undefined ? fake.apiKey : options.key;
  if (key !== null) headers['authorization'] = `Bearer ${key}`;
  const body = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const response = await request(`${fake.url}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await response.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.statusCode, headers: response.headers, text, json };
}

const createRun = (fake: FakeRunbase, input: Record<string, unknown>, model = 'google/nano-banana-pro', key?: string) =>
  call(fake, 'POST', '/runs', { body: { model, input }, ...(key !== undefined ? { key } : {}) });

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function pollUntilDone(fake: FakeRunbase, id: string, key?: string): Promise<{ seen: string[]; last: Record<string, unknown> }> {
  const seen: string[] = [];
  for (let i = 0; i < 200; i++) {
    const reply = await call(fake, 'GET', `/runs/${id}`, key !== undefined ? { key } : {});
    expect(reply.status).toBe(200);
    const run = reply.json as Record<string, unknown>;
    const status = String(run['status']);
    if (seen.at(-1) !== status) seen.push(status);
    if (status === 'succeeded' || status === 'failed') return { seen, last: run };
    await sleep(10);
  }
  throw new Error('run never finished');
}

describe('fake Runbase: runs', () => {
  it('creates a run, moves pending → processing → succeeded and serves a real PNG at the requested size', async () => {
    const fake = await start({ durationMs: 400, pendingMs: 150, rateLimit: false });
    const created = await createRun(fake, { prompt: 'a lamp', aspect_ratio: '16:9', resolution: '2K' });
    expect(created.status).toBe(200);
    const run = created.json as Record<string, unknown>;
    expect(run).toEqual({ id: expect.stringMatching(/^run_/), model: 'google/nano-banana-pro', status: 'pending', costUsd: 40_000 });
    expect(Number.isInteger(run['costUsd'])).toBe(true);

    const { seen, last } = await pollUntilDone(fake, String(run['id']));
    expect(seen).toEqual(['pending', 'processing', 'succeeded']);
    expect(last).toMatchObject({ id: run['id'], model: 'google/nano-banana-pro', status: 'succeeded', costUsd: 40_000 });
    expect(Date.parse(String(last['createdAt']))).toBeLessThanOrEqual(Date.parse(String(last['completedAt'])));
    const urls = (last['output'] as { urls: string[] }).urls;
    expect(urls).toHaveLength(1);
    expect(urls[0]).toMatch(new RegExp(`^${fake.origin}/files/generated/[0-9a-f]+\\.png$`));

    const download = await request(urls[0]!);
    expect(download.statusCode).toBe(200);
    expect(download.headers['content-type']).toBe('image/png');
    const png = Buffer.from(await download.body.arrayBuffer());
    const meta = await sharp(png).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 2752, 1536]);
    expect(JSON.stringify(meta.comments)).toContain(String(run['id']));

    // Recording: the client's Authorization header and body are kept, and counted by kind.
    const createRecord = fake.requests.find((r) => r.kind === 'create')!;
    expect(createRecord.headers.authorization).toBe(`Bearer ${RUNBASE_DEFAULT_KEY}`);
    expect(createRecord.body).toEqual({ model: 'google/nano-banana-pro', input: { prompt: 'a lamp', aspect_ratio: '16:9', resolution: '2K' } });
    expect(createRecord.status).toBe(200);
    expect(fake.counts.create).toBe(1);
    expect(fake.counts.download).toBe(1);
    expect(fake.counts.get).toBeGreaterThanOrEqual(3);
    expect(fake.counts.total).toBe(fake.requests.length);
    const stored = fake.runs.get(String(run['id']))!;
    expect(stored.downloads).toBe(1);
    expect(stored.terminalSeenAt! - stored.completedAt!).toBeGreaterThanOrEqual(0);
  });

  it('fails a run whose prompt says [fail:CODE], with error {message, code} or a string, and refunds it', async () => {
    const fake = await start({ durationMs: 20, balanceMicros: 100_000, rateLimit: false });
    const created = await createRun(fake, { prompt: 'nsfw [fail:MODERATION_FAILED]' });
    expect(fake.balanceMicros).toBe(60_000);
    const { last } = await pollUntilDone(fake, String((created.json as { id: string }).id));
    expect(last['status']).toBe('failed');
    expect(last['output']).toBeUndefined();
    expect(last['error']).toEqual({ message: expect.any(String), code: 'MODERATION_FAILED' });
    expect(fake.balanceMicros).toBe(100_000);

    fake.setOutcome(() => ({ status: 'failed', code: 'internal', message: 'boom', errorAs: 'string' }));
    const second = await createRun(fake, { prompt: 'anything' });
    const { last: secondRun } = await pollUntilDone(fake, String((second.json as { id: string }).id));
    expect(secondRun['error']).toBe('boom');
  });

  it('reports an undocumented status for a while when asked to', async () => {
    const fake = await start({ durationMs: 250, pendingMs: 10, unknownStatus: { forMs: 150 }, rateLimit: false });
    const created = await createRun(fake, { prompt: 'x' });
    const { seen } = await pollUntilDone(fake, String((created.json as { id: string }).id));
    expect(seen).toContain('weird_new_status');
    expect(seen.at(-1)).toBe('succeeded');
  });

  it('hides another key’s run (404 run_not_found) and unknown runs', async () => {
    const fake = await start({ apiKeys: ['sk-one', 'sk-two'] });
    const created = await createRun(fake, { prompt: 'x' }, 'google/nano-banana', 'sk-one');
    const id = String((created.json as { id: string }).id);
    expect((await call(fake, 'GET', `/runs/${id}`, { key: 'sk-one' })).status).toBe(200);
    for (const [path, key] of [[`/runs/${id}`, 'sk-two'], ['/runs/run_nope', 'sk-one']] as const) {
      const reply = await call(fake, 'GET', path, { key });
      expect(reply.status).toBe(404);
      expect(reply.json).toEqual({ error: { message: expect.any(String), code: 'run_not_found' } });
    }
    // No cancel endpoint.
    expect((await call(fake, 'DELETE', `/runs/${id}`, { key: 'sk-one' })).status).toBeGreaterThanOrEqual(400);
  });
});

describe('fake Runbase: references', () => {
  it('fetches image_urls when fetchReferences is on, failing runs whose references are unusable', async () => {
    const image = await sharp({ create: { width: 4, height: 4, channels: 3, background: '#08f' } }).png().toBuffer();
    const server = http.createServer((req, res) => {
      if (req.url === '/ref.png') res.writeHead(200, { 'content-type': 'image/png' }).end(image);
      else res.writeHead(404).end('gone');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const fake = await start({ durationMs: 20, fetchReferences: true, rateLimit: false });
      const good = await createRun(fake, { prompt: 'x', image_urls: [`${base}/ref.png`] });
      const bad = await createRun(fake, { prompt: 'x', image_urls: [`${base}/ref.png`, `${base}/expired.png`] });
      const goodRun = await pollUntilDone(fake, String((good.json as { id: string }).id));
      const badRun = await pollUntilDone(fake, String((bad.json as { id: string }).id));
      expect(goodRun.last['status']).toBe('succeeded');
      expect(fake.runs.get(String((good.json as { id: string }).id))!.references).toEqual([
        expect.objectContaining({ url: `${base}/ref.png`, ok: true, status: 200, bytes: image.length }),
      ]);
      expect(badRun.last).toMatchObject({ status: 'failed', error: { code: 'image_fetch_failed' } });
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('fake Runbase: validation and errors', () => {
  const envelope = (code: string) => ({ error: { message: expect.any(String), code } });

  it('authenticates with Bearer sk- keys', async () => {
    const fake = await start();
    const missing = await call(fake, 'GET', '/runs/run_x', { key: null });
    expect([missing.status, missing.json]).toEqual([401, envelope('missing_api_key')]);
    const wrong = await call(fake, 'GET', '/runs/run_x', { key: 'sk-not-mine' });
    expect([wrong.status, wrong.json]).toEqual([401, envelope('invalid_api_key')]);
    await expect(startFakeRunbase({ apiKeys: ['no-prefix'] })).rejects.toThrow(/sk-/);
  });

  it('rejects bodies the documentation does not allow, with the documented codes', async () => {
    const fake = await start({ rateLimit: false });
    const cases: [string, { body?: unknown; rawBody?: string }, string][] = [
      ['not JSON', { rawBody: '{"model": ' }, 'invalid_json'],
      ['no model', { body: { input: { prompt: 'x' } } }, 'missing_model'],
      ['unknown model', { body: { model: 'google/imagen-4', input: { prompt: 'x' } } }, 'model_not_found'],
      ['no input', { body: { model: 'google/nano-banana-pro' } }, 'missing_input'],
      ['no prompt', { body: { model: 'google/nano-banana-pro', input: { aspect_ratio: '1:1' } } }, 'invalid_input'],
      ['empty prompt', { body: { model: 'google/nano-banana-pro', input: { prompt: '' } } }, 'invalid_input'],
      ['8K', { body: { model: 'google/nano-banana-pro', input: { prompt: 'x', resolution: '8K' } } }, 'invalid_input'],
      ['lower-case 4k', { body: { model: 'google/nano-banana-pro', input: { prompt: 'x', resolution: '4k' } } }, 'invalid_input'],
      ['1:4 on pro', { body: { model: 'google/nano-banana-pro', input: { prompt: 'x', aspect_ratio: '1:4' } } }, 'invalid_input'],
      ['resolution on nano-banana', { body: { model: 'google/nano-banana', input: { prompt: 'x', resolution: '1K' } } }, 'invalid_input'],
      ['8:1 on nano-banana', { body: { model: 'google/nano-banana', input: { prompt: 'x', aspect_ratio: '8:1' } } }, 'invalid_input'],
      ['11 refs on nano-banana', { body: { model: 'google/nano-banana', input: { prompt: 'x', image_urls: Array.from({ length: 11 }, (_, i) => `https://a.example/${i}.png`) } } }, 'invalid_input'],
      ['data: URL', { body: { model: 'google/nano-banana-pro', input: { prompt: 'x', image_urls: ['data:image/png;base64,iVBORw0KGgo='] } } }, 'invalid_input'],
      ['unknown input field', { body: { model: 'google/nano-banana-pro', input: { prompt: 'x', temperature: 0.5 } } }, 'invalid_input'],
      ['webhook field', { body: { model: 'google/nano-banana-pro', input: { prompt: 'x' }, webhook: 'https://x' } }, 'invalid_input'],
    ];
    for (const [name, body, code] of cases) {
      const reply = await call(fake, 'POST', '/runs', body);
      expect({ name, status: reply.status, json: reply.json }).toEqual({ name, status: 400, json: envelope(code) });
    }
    expect(fake.runs.size).toBe(0);

    const accepted: [string, Record<string, unknown>][] = [
      ['google/nano-banana-2', { prompt: 'x', aspect_ratio: '1:8', resolution: '4K' }],
      ['google/nano-banana-2', { prompt: 'x', aspect_ratio: '4:1' }],
      ['google/nano-banana', { prompt: 'x', aspect_ratio: 'auto', image_urls: Array.from({ length: 10 }, (_, i) => `https://a.example/${i}.png`) }],
      ['google/nano-banana-pro', { prompt: 'x', aspect_ratio: '21:9', resolution: '1K', image_urls: ['http://127.0.0.1:1/ref.png'] }],
    ];
    for (const [model, input] of accepted) {
      const reply = await createRun(fake, input, model);
      expect({ model, input, status: reply.status }).toEqual({ model, input, status: 200 });
    }
  });

  it('enforces balance, spend limit, IP allow-list, usage quota and disabled keys', async () => {
    const fake = await start({
      apiKeys: ['sk-rich', 'sk-capped', 'sk-abroad', 'sk-used', 'sk-off'],
      balanceMicros: 50_000,
      keyPolicies: {
        'sk-capped': { spendLimitMicros: 15_000 },
        'sk-abroad': { ipNotAllowed: true },
        'sk-used': { usageExceeded: true },
        'sk-off': { disabled: true },
      },
    });
    const nb = (key: string) => createRun(fake, { prompt: 'x' }, 'google/nano-banana', key);
    expect((await nb('sk-capped')).status).toBe(200); // 10 000 of 15 000
    const capped = await nb('sk-capped');
    expect([capped.status, capped.json]).toEqual([403, envelope('api_key_spend_limit_exceeded')]);
    const abroad = await nb('sk-abroad');
    expect([abroad.status, abroad.json]).toEqual([403, envelope('ip_not_allowed')]);
    const used = await nb('sk-used');
    expect([used.status, used.json]).toEqual([429, envelope('USAGE_EXCEEDED')]);
    const off = await nb('sk-off');
    expect([off.status, off.json]).toEqual([401, envelope('invalid_api_key')]);
    // 40 000 left: one pro run (40 000) fits, the next does not.
    expect((await createRun(fake, { prompt: 'x' }, 'google/nano-banana-pro', 'sk-rich')).status).toBe(200);
    const broke = await createRun(fake, { prompt: 'x' }, 'google/nano-banana-pro', 'sk-rich');
    expect([broke.status, broke.json]).toEqual([402, envelope('insufficient_balance')]);
    expect(fake.balanceMicros).toBe(0);
    expect(fake.spentMicros('sk-capped')).toBe(10_000);
    expect(fake.counts.usageExceeded).toBe(1);
    expect(fake.counts.rateLimited).toBe(1); // every 429 sent
  });
});

describe('fake Runbase: rate limit', () => {
  it('allows 20 requests per 10 s per key by default, creates and polls together, with no Retry-After', async () => {
    const fake = await start({ apiKeys: ['sk-a', 'sk-b'] });
    const created = await createRun(fake, { prompt: 'x' }, 'google/nano-banana', 'sk-a');
    const id = String((created.json as { id: string }).id);
    const replies = await Promise.all(Array.from({ length: 19 }, () => call(fake, 'GET', `/runs/${id}`, { key: 'sk-a' })));
    expect(replies.every((reply) => reply.status === 200)).toBe(true);
    const over = await call(fake, 'GET', `/runs/${id}`, { key: 'sk-a' });
    expect(over.status).toBe(429);
    expect(over.json).toEqual({ error: { message: expect.any(String), code: 'RATE_LIMITED' } });
    expect(over.headers['retry-after']).toBeUndefined();
    const overCreate = await createRun(fake, { prompt: 'x' }, 'google/nano-banana', 'sk-a');
    expect(overCreate.status).toBe(429);
    // Another key has its own budget.
    expect((await createRun(fake, { prompt: 'x' }, 'google/nano-banana', 'sk-b')).status).toBe(200);
    expect(fake.counts.rateLimited).toBe(2);
    expect(fake.runs.size).toBe(2);
  });

  it('is a sliding window (scaled: 20 per 600 ms)', async () => {
    const fake = await start({ rateLimit: { requests: 20, windowMs: 600 } });
    const get = () => call(fake, 'GET', '/runs/run_missing');
    for (let i = 0; i < 10; i++) expect((await get()).status).toBe(404);
    await sleep(320);
    for (let i = 0; i < 10; i++) expect((await get()).status).toBe(404);
    expect((await get()).status).toBe(429);
    // The first ten leave the window ~600 ms after they were made; the second ten are still in it.
    await sleep(340);
    for (let i = 0; i < 10; i++) expect((await get()).status).toBe(404);
    expect((await get()).status).toBe(429);
    expect(fake.counts.rateLimited).toBe(2);
  });
});

describe('fake Runbase: fault injection', () => {
  it('answers injected statuses with the documented envelope, in order and `times` times', async () => {
    const fake = await start();
    fake.injectFault({ match: 'create', status: 500, times: 2 });
    fake.injectFault({ match: 'create', status: 429 });
    const replies = [];
    for (let i = 0; i < 4; i++) replies.push(await createRun(fake, { prompt: 'x' }));
    expect(replies.map((r) => r.status)).toEqual([500, 500, 429, 200]);
    expect(replies[0]!.json).toEqual({ error: { message: expect.any(String), code: expect.any(String) } });
    expect(replies[2]!.json).toEqual({ error: { message: expect.any(String), code: 'RATE_LIMITED' } });
    expect(fake.counts.rateLimited).toBe(1);
    expect(fake.runs.size).toBe(1);
    expect(fake.requests.filter((r) => r.faulted)).toHaveLength(3);
  });

  it('sends malformed answers: raw non-JSON, missing fields, custom headers', async () => {
    const fake = await start();
    const created = await createRun(fake, { prompt: 'x' });
    const id = String((created.json as { id: string }).id);
    fake.injectFault({ match: 'get', body: '<html>oops</html>', headers: { 'content-type': 'text/html' } });
    fake.injectFault({ match: 'get', malformed: 'missing-fields' });
    fake.injectFault({ match: 'get', rewrite: (real) => ({ ...(real as object), status: 'weird' }) });
    fake.injectFault({ match: 'get', status: 503, body: { nope: true }, headers: { 'retry-after': '1' } });
    const raw = await call(fake, 'GET', `/runs/${id}`);
    expect([raw.status, raw.text, raw.headers['content-type']]).toEqual([200, '<html>oops</html>', 'text/html']);
    const missing = await call(fake, 'GET', `/runs/${id}`);
    expect(missing.status).toBe(200);
    expect(missing.json).not.toHaveProperty('status');
    expect(missing.json).not.toHaveProperty('id');
    expect(missing.json).toHaveProperty('costUsd', 40_000);
    const rewritten = await call(fake, 'GET', `/runs/${id}`);
    expect(rewritten.json).toMatchObject({ id, status: 'weird' });
    const custom = await call(fake, 'GET', `/runs/${id}`);
    expect([custom.status, custom.json, custom.headers['retry-after']]).toEqual([503, { nope: true }, '1']);
    expect((await call(fake, 'GET', `/runs/${id}`)).json).toMatchObject({ id });
  });

  it('drops connections, before or after the request landed, and delays answers', async () => {
    const fake = await start();
    fake.injectFault({ match: 'create', dropConnection: true });
    await expect(createRun(fake, { prompt: 'x' })).rejects.toThrow();
    expect(fake.runs.size).toBe(0);

    fake.injectFault({ match: 'create', dropConnection: true, handled: true });
    await expect(createRun(fake, { prompt: 'x' })).rejects.toThrow();
    expect(fake.runs.size).toBe(1); // charged although the client never saw the answer

    fake.injectFault({ match: (r) => r.kind === 'get' && r.pathname.endsWith('run_slow'), delayMs: 150 });
    const started = Date.now();
    expect((await call(fake, 'GET', '/runs/run_slow')).status).toBe(404);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(fake.pendingFaults()).toBe(0);
  });

  it('close() ends keep-alive connections promptly', async () => {
    const fake = await startFakeRunbase();
    const agent = new Agent({ keepAliveTimeout: 60_000 });
    const reply = await request(`${fake.url}/runs/run_x`, { dispatcher: agent, headers: { authorization: `Bearer ${fake.apiKey}` } });
    await reply.body.text();
    const started = Date.now();
    await fake.close();
    expect(Date.now() - started).toBeLessThan(1_000);
    await agent.close();
  });
});

describe('fake Runbase: outputs', () => {
  it('makes 4K PNGs of several MB, and > 10 MiB ones for [big] prompts', async () => {
    const fake = await start({ durationMs: 10, outputVariants: 1, rateLimit: false });
    const download = async (input: Record<string, unknown>) => {
      const created = await createRun(fake, input, 'google/nano-banana-2');
      const { last } = await pollUntilDone(fake, String((created.json as { id: string }).id));
      const url = (last['output'] as { urls: string[] }).urls[0]!;
      const reply = await request(url);
      return Buffer.from(await reply.body.arrayBuffer());
    };
    const plain = await download({ prompt: 'x', aspect_ratio: '1:1', resolution: '4K' });
    const plainMeta = await sharp(plain).metadata();
    expect([plainMeta.width, plainMeta.height]).toEqual([4096, 4096]);
    expect(plain.length).toBeGreaterThan(3 * 1024 * 1024);
    expect(plain.length).toBeLessThan(10 * 1024 * 1024);

    const big = await download({ prompt: 'x [big]', aspect_ratio: '1:1', resolution: '4K' });
    const bigMeta = await sharp(big).metadata();
    expect([bigMeta.width, bigMeta.height]).toEqual([4096, 4096]);
    expect(big.length).toBeGreaterThan(10 * 1024 * 1024);

    const tall = await download({ prompt: 'x', aspect_ratio: '1:8' });
    const tallMeta = await sharp(tall).metadata();
    expect([tallMeta.width, tallMeta.height]).toEqual([368, 2896]);
  });
});
