import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RunblobClient } from '../../../../src/providers/runblob/client.ts';
import {
  AuthenticationError,
  InsufficientCreditsError,
  InvalidRequestError,
  MalformedResponseError,
  ProviderNetworkError,
  ProviderServerError,
  RateLimitedError,
  TaskNotFoundError,
  type ProviderError,
} from '../../../../src/providers/errors.ts';
import type { TaskInput } from '../../../../src/providers/types.ts';
import { freePort, memoryLogger, recordingSleep, startScriptServer, type Reply, type ScriptServer } from '../script-server.ts';

const API_KEY = 'rb-test-key-7f3e9a1c0d2b4e6f';
const UUID = 'ffd473d5-0b7e-4b55-9a3c-2f1d7b6c8e90';
const DATA_URL = 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';

const input = (over: Partial<TaskInput> = {}): TaskInput => ({
  prompt: 'A cute orange cat sitting on a windowsill',
  model: 'pro',
  ratio: '16:9',
  resolution: '4K',
  references: [],
  ...over,
});

const generation = (over: Record<string, unknown> = {}) => ({
  task_uuid: UUID,
  status: 'processing',
  prompt: 'A cute orange cat sitting on a windowsill',
  result_image_url: null,
  message: null,
  ...over,
});

let server: ScriptServer;
let clients: RunblobClient[] = [];
let sleeper: ReturnType<typeof recordingSleep>;
let logs: ReturnType<typeof memoryLogger>;

function client(over: Partial<ConstructorParameters<typeof RunblobClient>[0]> = {}) {
  const c = new RunblobClient({ apiKey: API_KEY, baseUrl: server.url, log: logs.log, sleep: sleeper.sleep, random: () => 0.5, ...over });
  clients.push(c);
  return c;
}

beforeEach(async () => {
  server = await startScriptServer();
  sleeper = recordingSleep();
  logs = memoryLogger();
});
afterEach(async () => {
  const open = clients;
  clients = [];
  await Promise.all(open.map((c) => c.close()));
  await server.close();
});

describe('RunblobClient.createTask', () => {
  it('sends exactly the documented body and reads the price', async () => {
    server.enqueue({ json: { task_uuid: UUID, status: 'pending', price: '0.0200' } });
    const created = await client().createTask(
      input({
        creativity: 0.3,
        references: [
          { kind: 'url', url: 'https://example.com/cat.jpg' },
          { kind: 'data', dataUrl: DATA_URL },
        ],
        callbackUrl: 'https://bot.example.com/callbacks/runblob/tok_abc',
      }),
    );
    expect(created).toEqual({ taskId: UUID, status: 'pending', costUsd: 0.02 });
    const req = server.requests[0]!;
    expect(req.method).toBe('POST');
    expect(req.url).toBe('/v1/gemini/generate');
    expect(req.headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.json).toEqual({
      prompt: 'A cute orange cat sitting on a windowsill',
      model: 'pro',
      quality: '4k',
      aspect_ratio: '16:9',
      temperature: 0.3,
      images: ['https://example.com/cat.jpg', DATA_URL],
      callback_url: 'https://bot.example.com/callbacks/runblob/tok_abc',
    });
  });

  it.each([
    ['1K', 'standard'],
    ['2K', '2k'],
    ['4K', '4k'],
  ] as const)('maps resolution %s to quality %s', async (resolution, quality) => {
    server.enqueue({ json: { task_uuid: UUID, status: 'pending', price: '0.1340' } });
    await client().createTask(input({ model: 'v2', resolution, ratio: 'auto' }));
    expect(server.requests[0]!.json).toEqual({ prompt: 'A cute orange cat sitting on a windowsill', model: 'v2', quality, aspect_ratio: 'auto' });
  });

  it.each([
    ['2K with the standard model', input({ model: 'standard', resolution: '2K' }), 'quality'],
    ['5 images with the standard model', input({ model: 'standard', resolution: '1K', references: Array.from({ length: 5 }, (_, i) => ({ kind: 'url' as const, url: `https://e.com/${i}.png` })) }), 'images'],
    ['9 images with pro', input({ references: Array.from({ length: 9 }, (_, i) => ({ kind: 'url' as const, url: `https://e.com/${i}.png` })) }), 'images'],
    ['a prompt over 4000 characters', input({ prompt: 'x'.repeat(4001) }), 'prompt'],
    ['an extended ratio', input({ ratio: '1:8' }), 'aspect_ratio'],
    ['temperature above 1', input({ creativity: 1.5 }), 'temperature'],
    ['an unknown model', input({ model: 'ultra' }), 'model'],
    ['a non-image data URL', input({ references: [{ kind: 'data', dataUrl: 'data:text/html;base64,PGgxPg==' }] }), 'images.0'],
  ])('refuses %s before sending anything', async (_label, bad, field) => {
    const err = await client().createTask(bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidRequestError);
    expect((err as InvalidRequestError).fields).toContain(field);
    expect((err as Error).message).not.toContain('xxxxxxxxxx');
    expect(server.requests).toHaveLength(0);
  });

  it('sends an inline image of exactly 20,000,000 bytes, refuses one byte more before sending (20 MB read as 10^6)', async () => {
    const inline = (bytes: number) => `data:image/jpeg;base64,${Buffer.alloc(bytes, 0xff).toString('base64')}`;
    const err = await client()
      .createTask(input({ references: [{ kind: 'data', dataUrl: inline(20_000_001) }] }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidRequestError);
    expect((err as InvalidRequestError).fields).toContain('images.0');
    expect(server.requests).toHaveLength(0);
    server.enqueue({ json: { task_uuid: UUID, status: 'pending', price: '0.0200' } });
    await client().createTask(input({ references: [{ kind: 'data', dataUrl: inline(20_000_000) }] }));
    const sent = (server.requests[0]!.json as { images: string[] }).images[0]!;
    expect(Buffer.from(sent.split(',')[1]!, 'base64')).toHaveLength(20_000_000);
  });

  it('never sends the undocumented image/jpg media type', async () => {
    const err = await client()
      .createTask(input({ references: [{ kind: 'data', dataUrl: DATA_URL.replace('image/png', 'image/jpg') }] }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidRequestError);
    expect(server.requests).toHaveLength(0);
  });

  it('reads a numeric price and a create answer without status', async () => {
    server.enqueue({ json: { task_uuid: UUID, price: 0.134 } });
    expect(await client().createTask(input())).toEqual({ taskId: UUID, status: 'pending', costUsd: 0.134 });
  });

  it('does not repeat a create that got a 500 or 503', async () => {
    server.enqueue({ status: 503, text: 'Service Unavailable' }, { json: { task_uuid: UUID, status: 'pending', price: '0.02' } });
    await expect(client().createTask(input())).rejects.toBeInstanceOf(ProviderServerError);
    expect(server.requests).toHaveLength(1);
  });

  it('repeats a create after a code-less 429 and a refused connection, passing the gate each time', async () => {
    server.enqueue({ status: 429, text: 'Too Many Requests', headers: { 'retry-after': '2' } }, { json: { task_uuid: UUID, status: 'pending', price: '0.02' } });
    const gate: string[] = [];
    await client().createTask(input(), { gate: async (k) => void gate.push(k) });
    expect(gate).toEqual(['create', 'create']);
    expect(sleeper.delays).toEqual([2000]);

    const port = await freePort();
    let revived: ScriptServer | undefined;
    const { sleep } = recordingSleep(async () => {
      revived ??= await startScriptServer(() => ({ json: { task_uuid: 'after', status: 'pending', price: '0.02' } }), port);
    });
    const c = client({ baseUrl: `http://127.0.0.1:${port}`, sleep });
    try {
      expect((await c.createTask(input())).taskId).toBe('after');
      expect(revived!.requests).toHaveLength(1);
    } finally {
      await c.close();
      await revived?.close();
    }
  });

  it('a refused connection that never comes back ends as a not-sent network error after maxAttempts', async () => {
    const port = await freePort();
    const c = client({ baseUrl: `http://127.0.0.1:${port}`, maxAttempts: 3 });
    const err = await c.createTask(input()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderNetworkError);
    expect((err as ProviderNetworkError).notSent).toBe(true);
    expect(sleeper.delays).toHaveLength(2);
  });
});

describe('RunblobClient error shapes through HTTP', () => {
  const cases: [string, Reply, abstract new (...a: never[]) => ProviderError, RegExp][] = [
    ['401 {error, message}', { status: 401, json: { error: 'Unauthorized', message: 'Invalid API key' } }, AuthenticationError, /Invalid API key/],
    ['402 {detail}', { status: 402, json: { detail: 'INSUFFICIENT_CREDITS' } }, InsufficientCreditsError, /INSUFFICIENT_CREDITS/],
    ['402 {success, message}', { status: 402, json: { success: false, message: 'INSUFFICIENT_CREDITS' } }, InsufficientCreditsError, /INSUFFICIENT_CREDITS/],
    ['404 {detail}', { status: 404, json: { detail: 'Generation not found' } }, TaskNotFoundError, /Generation not found/],
    [
      '422 {detail: [...]}',
      { status: 422, json: { detail: [{ type: 'string_too_short', loc: ['body', 'prompt'], msg: 'String should have at least 1 character' }] } },
      InvalidRequestError,
      /prompt: String should have at least 1 character/,
    ],
    ['400 plain text', { status: 400, text: 'Bad Request' }, InvalidRequestError, /Bad Request/],
    ['400 {detail}', { status: 400, json: { detail: 'quality 4k requires model pro or v2' } }, InvalidRequestError, /quality 4k/],
  ];
  it.each(cases)('create: %s', async (_label, reply, cls, pattern) => {
    server.enqueue(reply, { json: { task_uuid: UUID, status: 'pending', price: '0.02' } });
    const err = await client().createTask(input()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(cls);
    expect((err as Error).message).toMatch(pattern);
    expect((err as ProviderError).provider).toBe('runblob');
    expect(server.requests).toHaveLength(1);
  });

  it.each([
    ['500 text', { status: 500, text: 'Internal Server Error' }],
    ['503 HTML', { status: 503, text: '<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>' }],
    ['503 {detail}', { status: 503, json: { detail: 'Service Unavailable' } }],
    ['connection reset', 'destroy'],
  ] as [string, Reply][])('getTask retries %s and then reads the task', async (_label, reply) => {
    server.enqueue(reply, { json: generation({ status: 'completed', result_image_url: 'https://storage.runblob.io/x.png' }) });
    const snap = await client().getTask(UUID);
    expect(snap.status).toBe('succeeded');
    expect(server.requests).toHaveLength(2);
  });

  it('a 429 on a poll is retried', async () => {
    server.enqueue({ status: 429, json: { detail: 'Too many requests' } }, { json: generation() });
    await client().getTask(UUID);
    expect(server.requests).toHaveLength(2);
    expect(sleeper.delays).toEqual([250]);
  });

  it('a persistent 5xx ends as ProviderServerError after 4 attempts', async () => {
    server.enqueue(...Array.from({ length: 4 }, (): Reply => ({ status: 500, text: 'boom' })));
    await expect(client().getTask(UUID)).rejects.toBeInstanceOf(ProviderServerError);
    expect(server.requests).toHaveLength(4);
  });

  it('a RateLimitedError carries Retry-After as a HTTP date', async () => {
    const now = Date.parse('2026-06-01T12:00:00Z');
    server.enqueue(
      { status: 429, text: '', headers: { 'retry-after': 'Mon, 01 Jun 2026 12:00:06 GMT' } },
      { status: 429, text: '' },
    );
    const err = await client({ now: () => now, maxAttempts: 2 }).getTask(UUID).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RateLimitedError);
    expect(sleeper.delays).toEqual([6000]);
  });
});

describe('RunblobClient.getTask', () => {
  it('GETs the generation and maps completed → succeeded with the image URL', async () => {
    server.enqueue({
      json: generation({ status: 'completed', result_image_url: `https://storage.runblob.io/nanobanana/outputs/2025/12/${UUID}.png`, extra: 1 }),
    });
    const gate: string[] = [];
    const snap = await client().getTask(UUID, { gate: async (k) => void gate.push(k) });
    expect(snap).toEqual({ taskId: UUID, status: 'succeeded', outputUrls: [`https://storage.runblob.io/nanobanana/outputs/2025/12/${UUID}.png`] });
    expect(server.requests[0]).toMatchObject({ method: 'GET', url: `/v1/gemini/generations/${UUID}` });
    expect(server.requests[0]!.headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect(gate).toEqual(['poll']);
  });

  it('reads an unfinished task leniently: an empty result_image_url and a non-string message are ignored', async () => {
    server.enqueue(
      { json: generation({ status: 'pending', result_image_url: '', message: { note: 'queued' }, prompt: null }) },
      { json: generation({ status: 'failed', result_image_url: '', message: { code: 'MODERATION_FAILED' } }) },
    );
    const c = client();
    expect(await c.getTask(UUID)).toEqual({ taskId: UUID, status: 'pending', outputUrls: [] });
    const failed = await c.getTask(UUID);
    expect(failed.status).toBe('failed');
    expect(failed.failure?.code).toBe('MODERATION_FAILED');
  });

  it('a completed task whose result_image_url is not an http(s) URL is malformed, not succeeded', async () => {
    server.enqueue({ json: generation({ status: 'completed', result_image_url: 'ftp://x/y.png' }) });
    await expect(client().getTask(UUID)).rejects.toBeInstanceOf(MalformedResponseError);
  });

  it('maps pending, processing and unknown statuses (unknown logged once)', async () => {
    server.enqueue(
      { json: generation({ status: 'pending' }) },
      { json: generation({ status: 'processing' }) },
      { json: generation({ status: 'upscaling' }) },
      { json: generation({ status: 'upscaling' }) },
      { json: generation({ status: undefined }) },
    );
    const c = client();
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await c.getTask(UUID)).status);
    expect(statuses).toEqual(['pending', 'running', 'running', 'running', 'running']);
    expect(logs.records().filter((r) => r.status === 'upscaling')).toHaveLength(1);
  });

  it.each(['MODERATION_FAILED', 'INSUFFICIENT_CREDITS', 'INVALID_IMAGE', 'IMAGE_TOO_LARGE', 'UNSUPPORTED_IMAGE_FORMAT', 'TIMEOUT'])(
    'a failed task with message %s carries that code',
    async (code) => {
      server.enqueue({ json: generation({ status: 'failed', message: code }) });
      const snap = await client().getTask(UUID);
      expect(snap).toEqual({ taskId: UUID, status: 'failed', outputUrls: [], failure: { code, message: code } });
    },
  );

  it('a failed task with a sentence or no message gets GENERATION_FAILED', async () => {
    server.enqueue({ json: generation({ status: 'failed', message: 'Something broke' }) }, { json: generation({ status: 'failed', message: null }) });
    const c = client();
    expect((await c.getTask(UUID)).failure).toEqual({ code: 'GENERATION_FAILED', message: 'Something broke' });
    expect((await c.getTask(UUID)).failure?.code).toBe('GENERATION_FAILED');
  });

  it.each([
    ['completed without result_image_url', { json: generation({ status: 'completed', result_image_url: null }) }, /result_image_url/],
    ['no task_uuid', { json: { status: 'pending' } }, /task_uuid/],
    ['an array', { json: [generation()] }, /root|expected object/i],
    ['HTML with 200', { text: '<html>hello</html>' }, /not JSON/],
  ] as [string, Reply, RegExp][])('%s → MalformedResponseError, not retried', async (_label, reply, pattern) => {
    server.enqueue(reply, { json: generation() });
    const err = await client().getTask(UUID).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MalformedResponseError);
    expect((err as Error).message).toMatch(pattern);
    expect(server.requests).toHaveLength(1);
  });

  it('a malformed price on create is reported, not guessed', async () => {
    server.enqueue({ json: { task_uuid: UUID, status: 'pending', price: 'twenty cents' } });
    const err = await client().createTask(input()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MalformedResponseError);
    expect((err as Error).message).toMatch(/price/);
  });
});

describe('RunblobClient.getBalance', () => {
  it('reads the balance string as USD', async () => {
    server.enqueue({ json: { balance: '12.5000' } });
    expect(await client().getBalance()).toBe(12.5);
    expect(server.requests[0]).toMatchObject({ method: 'GET', url: '/v1/data/balance' });
  });

  it('is idempotent: retried on 5xx', async () => {
    server.enqueue({ status: 502, text: '' }, { json: { balance: '0.00' } });
    expect(await client().getBalance()).toBe(0);
    expect(server.requests).toHaveLength(2);
  });
});

describe('RunblobClient secrets', () => {
  it('never puts the API key in logs or errors', async () => {
    server.enqueue({ status: 401, json: { error: 'Unauthorized', message: 'Invalid API key' } }, { status: 500, text: 'x' }, { status: 500, text: 'x' });
    const c = client({ maxAttempts: 2 });
    const e1 = await c.createTask(input()).catch((e: unknown) => e);
    const e2 = await c.getTask(UUID).catch((e: unknown) => e);
    for (const e of [e1, e2]) expect(JSON.stringify({ m: (e as Error).message, s: (e as Error).stack })).not.toContain(API_KEY);
    expect(logs.lines()).not.toContain(API_KEY);
    expect(logs.lines()).toContain(c.keyId);
  });
});
