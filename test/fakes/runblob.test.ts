/**
 * Tests of the fake RunBlob itself: validation, error shapes, lifecycle, callbacks and outputs
 * as docs/providers.md describes them, checked on the wire.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { request } from 'undici';
import { RUNBLOB_DEFAULT_KEY, startFakeRunblob, type FakeRunblob, type FakeRunblobOptions } from './runblob.ts';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((fn) => fn()));
});

async function start(opts: FakeRunblobOptions = {}): Promise<FakeRunblob> {
  const fake = await startFakeRunblob(opts);
  cleanups.push(() => fake.close());
  return fake;
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: unknown;
}

async function call(
  fake: FakeRunblob,
  method: 'GET' | 'POST',
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

const generate = (fake: FakeRunblob, body: unknown, key?: string) => call(fake, 'POST', '/v1/gemini/generate', { body, ...(key !== undefined ? { key } : {}) });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function pollUntilDone(fake: FakeRunblob, uuid: string): Promise<{ seen: string[]; last: Record<string, unknown> }> {
  const seen: string[] = [];
  for (let i = 0; i < 300; i++) {
    const reply = await call(fake, 'GET', `/v1/gemini/generations/${uuid}`);
    expect(reply.status).toBe(200);
    const task = reply.json as Record<string, unknown>;
    const status = String(task['status']);
    if (seen.at(-1) !== status) seen.push(status);
    if (status === 'completed' || status === 'failed') return { seen, last: task };
    await sleep(10);
  }
  throw new Error('task never finished');
}

async function dataUrl(format: 'png' | 'jpeg' | 'webp'): Promise<string> {
  const image = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#c08040' } })[format]().toBuffer();
  return `data:image/${format};base64,${image.toString('base64')}`;
}

/** A local receiver for callbacks; answers with `status` after `delayMs`. */
async function startReceiver(behaviour: { status?: number; delayMs?: number } = {}) {
  const received: unknown[] = [];
  const server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (chunk: Buffer) => (text += chunk.toString()));
    req.on('end', () => {
      received.push(JSON.parse(text));
      setTimeout(() => {
        res.writeHead(behaviour.status ?? 200);
        res.end('ok');
      }, behaviour.delayMs ?? 0);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/runblob/secret-token`, received };
}

describe('fake RunBlob: tasks', () => {
  it('creates a task, moves pending → processing → completed, serves the PNG, lists and charges', async () => {
    const fake = await start({ durationMs: 400, pendingMs: 150 });
    const created = await generate(fake, { prompt: 'A cute orange cat', model: 'pro', quality: '2k', aspect_ratio: '16:9', temperature: 0.2 });
    expect(created.status).toBe(200);
    expect(created.json).toEqual({ task_uuid: expect.stringMatching(/^[0-9a-f-]{36}$/), status: 'pending', price: '0.0400' });
    const uuid = (created.json as { task_uuid: string }).task_uuid;
    expect(fake.requests[0]!.headers.authorization).toBe(`Bearer ${RUNBLOB_DEFAULT_KEY}`);

    const { seen, last } = await pollUntilDone(fake, uuid);
    expect(seen).toEqual(['pending', 'processing', 'completed']);
    expect(last).toMatchObject({ task_uuid: uuid, status: 'completed', prompt: 'A cute orange cat', message: null });
    const url = String(last['result_image_url']);
    expect(url).toMatch(new RegExp(`^${fake.origin}/nanobanana/outputs/\\d{4}/\\d{2}/${uuid}\\.png$`));
    const download = await request(url);
    expect(download.headers['content-type']).toBe('image/png');
    const meta = await sharp(Buffer.from(await download.body.arrayBuffer())).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 2752, 1536]);
    expect(fake.counts.download).toBe(1);

    const balance = await call(fake, 'GET', '/v1/data/balance');
    expect(balance.json).toEqual({ balance: '99.9600' });

    await generate(fake, { prompt: 'second' });
    const list = await call(fake, 'GET', '/v1/gemini/generations?limit=1&offset=1');
    expect(list.json).toEqual([expect.objectContaining({ task_uuid: uuid, status: 'completed' })]);
    const all = await call(fake, 'GET', '/v1/gemini/generations');
    expect((all.json as { prompt: string }[]).map((task) => task.prompt)).toEqual(['second', 'A cute orange cat']);
    for (const query of ['limit=0', 'limit=101', 'limit=x', 'offset=-1']) {
      const bad = await call(fake, 'GET', `/v1/gemini/generations?${query}`);
      expect(bad.status).toBe(422);
      expect((bad.json as { detail: { loc: unknown[] }[] }).detail[0]!.loc[0]).toBe('query');
    }
  });

  it('fails [fail:CODE] tasks with message = the code and refunds them', async () => {
    const fake = await start({ durationMs: 20, balanceUsd: 1 });
    const created = await generate(fake, { prompt: 'bad [fail:MODERATION_FAILED]' });
    expect(fake.balanceUsd).toBeCloseTo(0.98, 6);
    const { last } = await pollUntilDone(fake, (created.json as { task_uuid: string }).task_uuid);
    expect(last).toMatchObject({ status: 'failed', result_image_url: null, message: 'MODERATION_FAILED' });
    expect((await call(fake, 'GET', '/v1/data/balance')).json).toEqual({ balance: '1.0000' });
  });

  it('reports an undocumented status for a while when asked to', async () => {
    const fake = await start({ durationMs: 250, pendingMs: 10, unknownStatus: { forMs: 150 } });
    const created = await generate(fake, { prompt: 'x' });
    const { seen } = await pollUntilDone(fake, (created.json as { task_uuid: string }).task_uuid);
    expect(seen).toContain('weird_new_status');
    expect(seen.at(-1)).toBe('completed');
  });
});

describe('fake RunBlob: validation and error shapes', () => {
  it('answers 401 {"error":"Unauthorized","message":"Invalid API key"} without or with a wrong key', async () => {
    const fake = await start();
    for (const key of [null, 'rb-wrong']) {
      const reply = await call(fake, 'GET', '/v1/data/balance', { key });
      expect([reply.status, reply.json]).toEqual([401, { error: 'Unauthorized', message: 'Invalid API key' }]);
    }
  });

  it('rejects bodies outside the documented fields with 422 detail lists', async () => {
    const fake = await start();
    const png = await dataUrl('png');
    const gif = `data:image/gif;base64,${Buffer.from('GIF89a\x01\x00\x01\x00\x00\x00\x00;').toString('base64')}`;
    const textAsPng = `data:image/png;base64,${Buffer.from('hello, I am not an image at all').toString('base64')}`;
    const urls = (n: number) => Array.from({ length: n }, (_, i) => `https://img.example/${i}.png`);
    const cases: [string, unknown, (string | number)[]][] = [
      ['no prompt', { model: 'pro' }, ['body', 'prompt']],
      ['empty prompt', { prompt: '' }, ['body', 'prompt']],
      ['4001 chars', { prompt: 'a'.repeat(4001) }, ['body', 'prompt']],
      ['unknown model', { prompt: 'x', model: 'ultra' }, ['body', 'model']],
      ['unknown quality', { prompt: 'x', model: 'pro', quality: '8k' }, ['body', 'quality']],
      ['2k with standard', { prompt: 'x', quality: '2k' }, ['body']],
      ['4k with default model', { prompt: 'x', model: 'standard', quality: '4k' }, ['body']],
      ['1:4 ratio', { prompt: 'x', aspect_ratio: '1:4' }, ['body', 'aspect_ratio']],
      ['temperature > 1', { prompt: 'x', temperature: 1.5 }, ['body', 'temperature']],
      ['temperature < 0', { prompt: 'x', temperature: -0.1 }, ['body', 'temperature']],
      ['temperature string', { prompt: 'x', temperature: 'hot' }, ['body', 'temperature']],
      ['5 images on standard', { prompt: 'x', images: urls(5) }, ['body', 'images']],
      ['9 images on pro', { prompt: 'x', model: 'pro', images: urls(9) }, ['body', 'images']],
      ['not a URL', { prompt: 'x', images: ['ref.png'] }, ['body', 'images', 0]],
      ['gif data URL', { prompt: 'x', images: [png, gif] }, ['body', 'images', 1]],
      ['text bytes as png', { prompt: 'x', images: [textAsPng] }, ['body', 'images', 0]],
      ['bad callback', { prompt: 'x', callback_url: 'not a url' }, ['body', 'callback_url']],
    ];
    for (const [name, body, loc] of cases) {
      const reply = await generate(fake, body);
      const detail = (reply.json as { detail: { type: string; loc: unknown[]; msg: string }[] }).detail;
      expect({ name, status: reply.status, loc: detail?.[0]?.loc }).toEqual({ name, status: 422, loc });
      expect(detail[0]).toEqual(expect.objectContaining({ type: expect.any(String), msg: expect.any(String) }));
    }
    const json = await call(fake, 'POST', '/v1/gemini/generate', { rawBody: '{"prompt": ' });
    expect(json.status).toBe(422);
    expect((json.json as { detail: { type: string }[] }).detail[0]!.type).toBe('json_invalid');
    // Every problem at once.
    const many = await generate(fake, { prompt: '', model: 'x', temperature: 3 });
    expect((many.json as { detail: { loc: unknown[] }[] }).detail.map((issue) => issue.loc.at(-1))).toEqual(['prompt', 'model', 'temperature']);
    expect(fake.tasks.size).toBe(0);

    const accepted: unknown[] = [
      { prompt: '🍌'.repeat(4000) }, // 4000 characters (code points), 8000 UTF-16 units
      { prompt: 'x', model: 'v2', quality: '4k', aspect_ratio: '21:9', temperature: 0, images: [png, await dataUrl('jpeg'), await dataUrl('webp')] },
      { prompt: 'x', model: 'pro', images: urls(8), temperature: 1, callback_url: 'https://bot.example/cb', unknown_field: true },
      { prompt: 'x', model: null, quality: null, images: null },
    ];
    for (const body of accepted) {
      const reply = await generate(fake, body);
      expect({ body: JSON.stringify(body).slice(0, 80), status: reply.status }).toEqual({ body: JSON.stringify(body).slice(0, 80), status: 200 });
    }
  });

  it('rejects a data URL over 20 MB, or fails the task instead when configured', async () => {
    const fake = await start({ durationMs: 10 });
    const huge = Buffer.alloc(20_000_001); // the stricter reading of "20 MB"
    (await sharp({ create: { width: 2, height: 2, channels: 3, background: '#fff' } }).png().toBuffer()).copy(huge);
    const body = { prompt: 'x', images: [`data:image/png;base64,${huge.toString('base64')}`] };
    const reply = await generate(fake, body);
    expect(reply.status).toBe(422);
    expect((reply.json as { detail: { msg: string }[] }).detail[0]!.msg).toContain('IMAGE_TOO_LARGE');

    const lenient = await start({ durationMs: 10, badImageAnswer: 'failed-task' });
    const created = await generate(lenient, { prompt: 'x', images: [`data:image/gif;base64,R0lGODlhAQABAAAAADs=`] });
    expect(created.status).toBe(200);
    const uuid = (created.json as { task_uuid: string }).task_uuid;
    const { last } = await pollUntilDone(lenient, uuid);
    expect(last).toMatchObject({ status: 'failed', message: 'UNSUPPORTED_IMAGE_FORMAT' });
  });

  it('fails a task with INVALID_IMAGE when fetchReferences is on and a URL image cannot be fetched', async () => {
    const fake = await start({ durationMs: 20, fetchReferences: { timeoutMs: 500 } });
    const created = await generate(fake, { prompt: 'x', images: [`${fake.origin}/nowhere.png`] });
    const { last } = await pollUntilDone(fake, (created.json as { task_uuid: string }).task_uuid);
    expect(last).toMatchObject({ status: 'failed', message: 'INVALID_IMAGE' });
    expect(fake.tasks.get(last['task_uuid'] as string)!.references).toEqual([expect.objectContaining({ ok: false, status: 404 })]);
  });

  it('answers 404 {"detail":"Generation not found"} for unknown and other keys’ tasks', async () => {
    const fake = await start({ apiKeys: ['rb-one', 'rb-two'] });
    const created = await generate(fake, { prompt: 'x' }, 'rb-one');
    const uuid = (created.json as { task_uuid: string }).task_uuid;
    for (const [id, key] of [[uuid, 'rb-two'], ['00000000-0000-4000-8000-000000000000', 'rb-one']] as const) {
      const reply = await call(fake, 'GET', `/v1/gemini/generations/${id}`, { key });
      expect([reply.status, reply.json]).toEqual([404, { detail: 'Generation not found' }]);
    }
  });

  it('answers 402 in either documented shape when credits run out', async () => {
    for (const [shape, expected] of [
      ['detail', { detail: 'INSUFFICIENT_CREDITS' }],
      ['success-false', { success: false, message: 'INSUFFICIENT_CREDITS' }],
    ] as const) {
      const fake = await start({ balanceUsd: 0.03, insufficientCreditsShape: shape });
      expect((await generate(fake, { prompt: 'x' })).status).toBe(200);
      const reply = await generate(fake, { prompt: 'x' });
      expect([reply.status, reply.json]).toEqual([402, expected]);
      expect(fake.tasks.size).toBe(1);
    }
  });

  it('injects platform errors, malformed answers and dropped connections', async () => {
    const fake = await start();
    fake.injectFault({ match: 'create', status: 503 });
    fake.injectFault({ match: 'create', status: 500, times: 1 });
    fake.injectFault({ match: 'create', status: 400 });
    fake.injectFault({ match: 'create', malformed: 'non-json' });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await generate(fake, { prompt: 'x' })).status);
    expect(statuses).toEqual([503, 500, 400, 200]);
    expect(fake.tasks.size).toBe(0);

    fake.injectFault({ match: 'create', malformed: 'wrong-types' });
    const wrong = await generate(fake, { prompt: 'x' });
    expect(wrong.json).toEqual({ task_uuid: null, status: 12345, price: '0.0200' });
    expect(fake.tasks.size).toBe(1); // landed and charged

    fake.injectFault({ match: 'any', dropConnection: true });
    await expect(call(fake, 'GET', '/v1/data/balance')).rejects.toThrow();
    expect(fake.requests.at(-1)).toMatchObject({ kind: 'balance', status: 0, faulted: true });
  });
});

/** Waits until every task of the fake has ended, then for the callbacks it scheduled. */
async function settle(fake: FakeRunblob): Promise<void> {
  for (let i = 0; i < 500 && [...fake.tasks.keys()].some((uuid) => !['completed', 'failed'].includes(fake.statusOf(uuid)!)); i++) await sleep(5);
  await fake.callbacksSettled();
}

describe('fake RunBlob: callbacks', () => {
  const body = (callbackUrl: string, prompt = 'x') => ({ prompt, callback_url: callbackUrl });

  it('POSTs {task_uuid, status, result_image_url, message} once when the task ends', async () => {
    const receiver = await startReceiver();
    const fake = await start({ durationMs: 20 });
    const ok = (await generate(fake, body(receiver.url))).json as { task_uuid: string };
    const bad = (await generate(fake, body(receiver.url, 'no [fail:TIMEOUT]'))).json as { task_uuid: string };
    await settle(fake);
    expect(receiver.received).toHaveLength(2);
    expect(receiver.received).toContainEqual({ task_uuid: ok.task_uuid, status: 'completed', result_image_url: fake.tasks.get(ok.task_uuid)!.resultUrl, message: null });
    expect(receiver.received).toContainEqual({ task_uuid: bad.task_uuid, status: 'failed', result_image_url: null, message: 'TIMEOUT' });
    expect(fake.callbacks.map((delivery) => [delivery.status, delivery.ok, delivery.duplicate])).toEqual([
      [200, true, false],
      [200, true, false],
    ]);
  });

  it('delivers twice, drops, or delays when asked (options or prompt markers)', async () => {
    const receiver = await startReceiver();
    const fake = await start({ durationMs: 20, callbacks: { mode: 'twice', duplicateGapMs: 5 } });
    const twice = (await generate(fake, body(receiver.url))).json as { task_uuid: string };
    const dropped = (await generate(fake, body(receiver.url, 'x [callback:drop]'))).json as { task_uuid: string };
    const delayed = (await generate(fake, body(receiver.url, 'x [callback:delay=150]'))).json as { task_uuid: string };
    await settle(fake);
    const uuids = receiver.received.map((event) => (event as { task_uuid: string }).task_uuid);
    expect(uuids.filter((uuid) => uuid === twice.task_uuid)).toHaveLength(2);
    expect(uuids).not.toContain(dropped.task_uuid);
    expect(fake.droppedCallbacks).toEqual([dropped.task_uuid]);
    const late = fake.callbacks.find((delivery) => delivery.taskUuid === delayed.task_uuid)!;
    expect(late.sentAt - fake.tasks.get(delayed.task_uuid)!.completedAt!).toBeGreaterThanOrEqual(140);
    expect(fake.callbacks.filter((delivery) => delivery.taskUuid === twice.task_uuid).map((d) => d.duplicate)).toEqual([false, true]);
  });

  it('records whether the receiver answered 2xx in time, and retries when configured', async () => {
    const slow = await startReceiver({ delayMs: 300 });
    const failing = await startReceiver({ status: 500 });
    const fake = await start({ durationMs: 10, callbacks: { timeoutMs: 100, retries: 1, retryDelayMs: 10 } });
    const a = (await generate(fake, body(slow.url))).json as { task_uuid: string };
    const b = (await generate(fake, body(failing.url))).json as { task_uuid: string };
    await settle(fake);
    const slowDeliveries = fake.callbacks.filter((delivery) => delivery.taskUuid === a.task_uuid);
    expect(slowDeliveries.map((d) => [d.attempt, d.ok, d.status])).toEqual([
      [1, false, undefined],
      [2, false, undefined],
    ]);
    expect(slowDeliveries[0]!.error).toMatch(/timeout|abort/i);
    const failed = fake.callbacks.filter((delivery) => delivery.taskUuid === b.task_uuid);
    expect(failed.map((d) => [d.attempt, d.ok, d.status])).toEqual([
      [1, false, 500],
      [2, false, 500],
    ]);
  });
});

describe('fake RunBlob: outputs', () => {
  it('makes standard 1K, pro 4K (several MB) and noisy 4K (> 10 MiB) PNGs', async () => {
    const fake = await start({ durationMs: 10, outputVariants: 1, noisyOutputs: false });
    const output = async (request_: Record<string, unknown>) => {
      const created = await generate(fake, request_);
      const { last } = await pollUntilDone(fake, (created.json as { task_uuid: string }).task_uuid);
      const reply = await request(String(last['result_image_url']));
      const png = Buffer.from(await reply.body.arrayBuffer());
      const meta = await sharp(png).metadata();
      return { width: meta.width, height: meta.height, bytes: png.length };
    };
    expect(await output({ prompt: 'x', aspect_ratio: '9:16' })).toMatchObject({ width: 768, height: 1376 });
    const pro4k = await output({ prompt: 'x', model: 'pro', quality: '4k', aspect_ratio: '1:1' });
    expect(pro4k).toMatchObject({ width: 4096, height: 4096 });
    expect(pro4k.bytes).toBeGreaterThan(3 * 1024 * 1024);
    const big = await output({ prompt: 'x [big]', model: 'v2', quality: '4k', aspect_ratio: '1:1' });
    expect(big.bytes).toBeGreaterThan(10 * 1024 * 1024);
  });
});
