import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MockAgent } from 'undici';
import { RunbaseClient } from '../../../../src/providers/runbase/client.ts';
import {
  AuthenticationError,
  InsufficientCreditsError,
  InvalidRequestError,
  KeyPolicyError,
  MalformedResponseError,
  ProviderNetworkError,
  ProviderServerError,
  RateLimitedError,
  TaskNotFoundError,
  type ProviderError,
} from '../../../../src/providers/errors.ts';
import type { TaskInput } from '../../../../src/providers/types.ts';
import { freePort, memoryLogger, recordingSleep, startScriptServer, type ScriptServer } from '../script-server.ts';

const API_KEY = 'sk-test-runbase-0123456789abcdef';

const input = (over: Partial<TaskInput> = {}): TaskInput => ({
  prompt: 'A cinematic product photo of a ceramic lamp',
  model: 'google/nano-banana-pro',
  ratio: '16:9',
  resolution: '4K',
  references: [],
  ...over,
});

const run = (over: Record<string, unknown> = {}) => ({ id: 'run_2abc', model: 'google/nano-banana-pro', status: 'pending', costUsd: 40000, ...over });

let server: ScriptServer;
let clients: RunbaseClient[] = [];
let sleeper: ReturnType<typeof recordingSleep>;
let logs: ReturnType<typeof memoryLogger>;

function client(over: Partial<ConstructorParameters<typeof RunbaseClient>[0]> = {}) {
  const c = new RunbaseClient({ apiKey: API_KEY, baseUrl: `${server.url}/api/v1/`, log: logs.log, sleep: sleeper.sleep, random: () => 0.5, ...over });
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

describe('RunbaseClient.createTask', () => {
  it('sends exactly the documented body with bearer auth, and reports the cost in USD', async () => {
    server.enqueue({ status: 201, json: run() });
    const created = await client().createTask(
      input({ references: [{ kind: 'url', url: 'https://example.com/ref1.png' }, { kind: 'url', url: 'https://example.com/ref2.jpg' }] }),
    );
    expect(created).toEqual({ taskId: 'run_2abc', status: 'pending', costUsd: 0.04 });
    expect(server.requests).toHaveLength(1);
    const req = server.requests[0]!;
    expect(req.method).toBe('POST');
    expect(req.url).toBe('/api/v1/runs');
    expect(req.headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.json).toEqual({
      model: 'google/nano-banana-pro',
      input: {
        prompt: 'A cinematic product photo of a ceramic lamp',
        aspect_ratio: '16:9',
        resolution: '4K',
        image_urls: ['https://example.com/ref1.png', 'https://example.com/ref2.jpg'],
      },
    });
  });

  it('accepts a charged run whose answers omit the status: queued after create, still running when polled', async () => {
    server.enqueue({ json: { id: 'run_2abc', costUsd: 40000 } }, { json: { id: 'run_2abc', costUsd: 40000 } });
    const c = client();
    expect(await c.createTask(input())).toEqual({ taskId: 'run_2abc', status: 'pending', costUsd: 0.04 });
    expect((await c.getTask('run_2abc')).status).toBe('running');
    expect(server.requests).toHaveLength(2); // the create was not repeated
  });

  it('omits image_urls without references, and resolution for google/nano-banana', async () => {
    server.enqueue({ json: run() }, { json: run({ costUsd: 39000 }) });
    await client().createTask(input({ ratio: '1:8', model: 'google/nano-banana-2', resolution: '2K' }));
    const second = await client().createTask(input({ model: 'google/nano-banana', resolution: '1K', ratio: 'auto' }));
    expect(server.requests[0]!.json).toEqual({
      model: 'google/nano-banana-2',
      input: { prompt: 'A cinematic product photo of a ceramic lamp', aspect_ratio: '1:8', resolution: '2K' },
    });
    expect(server.requests[1]!.json).toEqual({
      model: 'google/nano-banana',
      input: { prompt: 'A cinematic product photo of a ceramic lamp', aspect_ratio: 'auto' },
    });
    expect(second.costUsd).toBeCloseTo(0.039, 10);
  });

  it('refuses a data reference before sending anything: Runbase takes URLs only', async () => {
    const err = await client()
      .createTask(input({ references: [{ kind: 'url', url: 'https://a.example/x.png' }, { kind: 'data', dataUrl: 'data:image/png;base64,AAAA' }] }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidRequestError);
    expect((err as Error).message).toMatch(/URLs only/);
    expect((err as Error).message).toMatch(/reference 2/);
    expect(server.requests).toHaveLength(0);
  });

  it('awaits the gate before every attempt, retries included, with kind "create"', async () => {
    server.enqueue(
      { status: 429, json: { error: { code: 'RATE_LIMITED', message: 'Too many requests' } } },
      { status: 429, json: { error: { code: 'RATE_LIMITED', message: 'Too many requests' } } },
      { json: run() },
    );
    const gateCalls: string[] = [];
    const gate = async (kind: 'create' | 'poll') => {
      gateCalls.push(kind);
      // Each request must be preceded by exactly one gate passage.
      expect(server.requests.length).toBe(gateCalls.length - 1);
    };
    await expect(client().createTask(input(), { gate })).resolves.toMatchObject({ taskId: 'run_2abc' });
    expect(gateCalls).toEqual(['create', 'create', 'create']);
    expect(server.requests).toHaveLength(3);
    // No Retry-After: full-jitter backoff (random 0.5 × 500 ms, × 1000 ms)
    expect(sleeper.delays).toEqual([250, 500]);
  });

  it('honours Retry-After on a 429 RATE_LIMITED', async () => {
    server.enqueue(
      { status: 429, json: { error: { code: 'RATE_LIMITED', message: 'slow down' } }, headers: { 'retry-after': '4' } },
      { json: run() },
    );
    await client().createTask(input());
    expect(sleeper.delays).toEqual([4000]);
  });

  it('does not repeat a create that got a 500 (it may have been charged)', async () => {
    server.enqueue({ status: 500, json: { error: { code: 'internal_error', message: 'oops' } } }, { json: run() });
    await expect(client().createTask(input())).rejects.toBeInstanceOf(ProviderServerError);
    expect(server.requests).toHaveLength(1);
  });

  it('does not repeat a create after 429 USAGE_EXCEEDED (permanent)', async () => {
    server.enqueue({ status: 429, json: { error: { code: 'USAGE_EXCEEDED', message: 'quota spent' } } }, { json: run() });
    const err = await client().createTask(input()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeyPolicyError);
    expect((err as ProviderError).retryable).toBe(false);
    expect(server.requests).toHaveLength(1);
    expect(sleeper.delays).toEqual([]);
  });

  it('repeats a create whose connection was refused, once the provider is back', async () => {
    const port = await freePort();
    let revived: ScriptServer | undefined;
    const gateCalls: string[] = [];
    const { sleep, delays } = recordingSleep(async () => {
      revived ??= await startScriptServer(() => ({ json: run({ id: 'run_after_refusal' }) }), port);
    });
    const c = client({ baseUrl: `http://127.0.0.1:${port}/api/v1`, sleep });
    try {
      const created = await c.createTask(input(), { gate: async (k) => void gateCalls.push(k) });
      expect(created.taskId).toBe('run_after_refusal');
      expect(delays).toHaveLength(1);
      expect(gateCalls).toEqual(['create', 'create']);
      expect(revived!.requests).toHaveLength(1);
    } finally {
      await c.close();
      await revived?.close();
    }
  });

  it('does not repeat a create that timed out (it may have landed); a poll is repeated', async () => {
    server.enqueue('hang', 'hang');
    const c = client({ timeoutMs: 150 });
    const err = await c.createTask(input()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderNetworkError);
    expect((err as ProviderNetworkError).notSent).toBe(false);
    expect(server.requests).toHaveLength(1);

    server.enqueue({ json: run({ status: 'processing' }) });
    await expect(c.getTask('run_2abc')).resolves.toMatchObject({ status: 'running' });
    expect(server.requests).toHaveLength(3);
  });

  it('maps a reset connection on a create to a non-repeated network error', async () => {
    server.enqueue('destroy', { json: run() });
    const err = await client().createTask(input()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderNetworkError);
    expect(server.requests).toHaveLength(1);
  });
});

describe('RunbaseClient errors, every documented code through HTTP', () => {
  const cases: [number, string, abstract new (...a: never[]) => ProviderError, boolean][] = [
    [400, 'invalid_json', InvalidRequestError, false],
    [400, 'missing_model', InvalidRequestError, false],
    [400, 'missing_input', InvalidRequestError, false],
    [400, 'invalid_input', InvalidRequestError, false],
    [400, 'model_not_found', InvalidRequestError, false],
    [401, 'missing_api_key', AuthenticationError, false],
    [401, 'invalid_api_key', AuthenticationError, false],
    [402, 'insufficient_balance', InsufficientCreditsError, false],
    [403, 'api_key_spend_limit_exceeded', KeyPolicyError, false],
    [403, 'ip_not_allowed', KeyPolicyError, false],
    [404, 'run_not_found', TaskNotFoundError, false],
    [429, 'RATE_LIMITED', RateLimitedError, true],
    [429, 'USAGE_EXCEEDED', KeyPolicyError, false],
    [500, 'internal', ProviderServerError, true],
  ];
  it.each(cases)('getTask: %i %s → %o (retried: %s)', async (status, code, cls, retried) => {
    server.enqueue(
      ...Array.from({ length: 4 }, () => ({ status, json: { error: { message: `msg ${code}`, code } } })),
    );
    const err = await client().getTask('run_x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(cls);
    expect((err as ProviderError).providerCode).toBe(code);
    expect(server.requests).toHaveLength(retried ? 4 : 1);
    expect(sleeper.delays).toHaveLength(retried ? 3 : 0);
  });

  it('recovers when a poll hits a 502 HTML page, then succeeds', async () => {
    server.enqueue({ status: 502, text: '<html><body>Bad gateway</body></html>' }, { json: run({ status: 'processing' }) });
    await expect(client().getTask('run_2abc')).resolves.toMatchObject({ status: 'running' });
    expect(server.requests).toHaveLength(2);
  });

  it('respects maxAttempts', async () => {
    server.enqueue(...Array.from({ length: 5 }, () => ({ status: 503, text: '' })));
    await expect(client({ maxAttempts: 2 }).getTask('run_x')).rejects.toBeInstanceOf(ProviderServerError);
    expect(server.requests).toHaveLength(2);
  });
});

describe('RunbaseClient.getTask', () => {
  it('GETs /runs/{id} and maps a succeeded run', async () => {
    server.enqueue({
      json: run({
        status: 'succeeded',
        output: { urls: ['https://runbase.net/files/generated/abc123.png'] },
        createdAt: '2026-06-01T12:00:00.000Z',
        completedAt: '2026-06-01T12:00:04.200Z',
        somethingNew: { nested: true },
      }),
    });
    const gateKinds: string[] = [];
    const snap = await client().getTask('run_2abc', { gate: async (k) => void gateKinds.push(k) });
    expect(snap).toEqual({
      taskId: 'run_2abc',
      status: 'succeeded',
      outputUrls: ['https://runbase.net/files/generated/abc123.png'],
      costUsd: 0.04,
    });
    expect(server.requests[0]).toMatchObject({ method: 'GET', url: '/api/v1/runs/run_2abc' });
    expect(server.requests[0]!.headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect(gateKinds).toEqual(['poll']);
  });

  it('passes the gate before each poll attempt, retries included, with kind "poll"', async () => {
    server.enqueue({ status: 500, text: '' }, { status: 503, text: '' }, { json: run({ status: 'processing' }) });
    const gateKinds: string[] = [];
    await client().getTask('run_2abc', { gate: async (k) => void gateKinds.push(k) });
    expect(gateKinds).toEqual(['poll', 'poll', 'poll']);
    expect(server.requests).toHaveLength(3);
  });

  it('maps pending and processing', async () => {
    server.enqueue({ json: run({ status: 'pending' }) }, { json: run({ status: 'processing' }) });
    const c = client();
    expect((await c.getTask('run_2abc')).status).toBe('pending');
    expect((await c.getTask('run_2abc')).status).toBe('running');
  });

  it('reads an unfinished run leniently: odd output URLs, numeric timestamps and a null model are ignored', async () => {
    server.enqueue({ json: run({ status: 'processing', model: null, output: { urls: [''] }, createdAt: 1_780_000_000_000 }) });
    expect(await client().getTask('run_2abc')).toEqual({ taskId: 'run_2abc', status: 'running', outputUrls: [], costUsd: 0.04 });
  });

  it('treats an unknown status as running and logs it once', async () => {
    server.enqueue({ json: run({ status: 'starting' }) }, { json: run({ status: 'starting' }) }, { json: run({ status: 'queued_gpu' }) });
    const c = client();
    for (let i = 0; i < 3; i++) expect((await c.getTask('run_2abc')).status).toBe('running');
    const warned = logs.records().filter((r) => r.msg === 'runbase reported an unknown run status; treating it as running');
    expect(warned.map((r) => r.status)).toEqual(['starting', 'queued_gpu']);
  });

  it.each([
    ['a {message, code} object', { message: 'Prompt blocked by safety filter', code: 'MODERATION_FAILED' }, 'MODERATION_FAILED', 'Prompt blocked by safety filter'],
    ['a lower-case code', { message: 'blocked', code: 'moderation_failed' }, 'MODERATION_FAILED', 'blocked'],
    ['a string naming a known code', 'MODERATION_FAILED: the prompt was refused', 'MODERATION_FAILED', 'MODERATION_FAILED: the prompt was refused'],
    ['an object without code', { message: 'Image too large: IMAGE_TOO_LARGE' }, 'IMAGE_TOO_LARGE', 'Image too large: IMAGE_TOO_LARGE'],
    ['a plain string', 'the model crashed', 'GENERATION_FAILED', 'the model crashed'],
    ['nothing', null, 'GENERATION_FAILED', 'the run failed without a reason'],
    ['a number', 42, 'GENERATION_FAILED', '42'],
    ['an object with a nested message', { message: { text: 'TIMEOUT' }, code: 7 }, '7', '{"text":"TIMEOUT"}'],
  ])('reads a failed run whose error is %s', async (_label, error, code, message) => {
    server.enqueue({ json: run({ status: 'failed', error }) });
    const snap = await client().getTask('run_2abc');
    expect(snap.status).toBe('failed');
    expect(snap.failure).toEqual({ code, message });
    expect(snap.outputUrls).toEqual([]);
    // Runbase refunds failed runs in full.
    expect(snap.costUsd).toBe(0);
  });

  it('encodes the task id into the path', async () => {
    server.enqueue({ json: run({ id: 'run/../x' }) });
    await client().getTask('run/../x');
    expect(server.requests[0]!.url).toBe('/api/v1/runs/run%2F..%2Fx');
  });
});

describe('RunbaseClient malformed answers', () => {
  it.each([
    ['not JSON', { text: 'OK' }, /not JSON/],
    ['an empty body', { text: '' }, /not JSON \(empty\)/],
    ['a run without id', { json: { status: 'pending' } }, /id/],
    ['a numeric status', { json: run({ status: 3 }) }, /status/],
    ['a succeeded run without URLs', { json: run({ status: 'succeeded', output: { urls: [] } }) }, /output\.urls/],
    ['a non-URL output', { json: run({ status: 'succeeded', output: { urls: ['javascript:alert(1)'] } }) }, /output\.urls/],
    ['a negative cost', { json: run({ costUsd: -5 }) }, /costUsd/],
  ])('%s → MalformedResponseError naming the problem, not retried', async (_label, reply, pattern) => {
    server.enqueue(reply, { json: run() });
    const err = await client().getTask('run_2abc').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MalformedResponseError);
    expect((err as Error).message).toMatch(pattern);
    expect((err as Error).message).not.toContain(API_KEY);
    expect(server.requests).toHaveLength(1);
  });

  it('an oversized 2xx answer is refused without buffering it all', async () => {
    server.enqueue({ text: `{"id":"run_2abc","status":"pending","pad":"${'x'.repeat(2 * 1024 * 1024)}"}` });
    const err = await client().getTask('run_2abc').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MalformedResponseError);
    expect((err as Error).message).toMatch(/more than 1048576 bytes/);
  });

  it('reads a numeric-string cost', async () => {
    server.enqueue({ json: run({ costUsd: '130000' }) });
    expect((await client().createTask(input())).costUsd).toBeCloseTo(0.13, 10);
  });
});

describe('RunbaseClient identity, logs, abort', () => {
  it('keyId is a short stable hash, never the key', () => {
    const a = client();
    const b = client();
    const other = client({ apiKey: 'sk-another-key-000000' });
    expect(a.keyId).toBe(b.keyId);
    expect(a.keyId).not.toBe(other.keyId);
    expect(a.keyId).toMatch(/^[0-9a-f]{12}$/);
    expect(API_KEY).not.toContain(a.keyId);
  });

  it('never logs the API key, and logs the keyId', async () => {
    server.enqueue(
      { status: 429, json: { error: { code: 'RATE_LIMITED', message: `rate limited for ${API_KEY.slice(0, 4)}` } } },
      { json: run() },
    );
    const c = client();
    await c.createTask(input());
    const text = logs.lines();
    expect(text).not.toContain(API_KEY);
    expect(text).toContain(c.keyId);
    expect(logs.records().some((r) => r.msg === 'provider call failed; retrying' && r.providerCode === 'RATE_LIMITED')).toBe(true);
  });

  it('an abort while waiting for the provider rejects with the caller’s reason', async () => {
    server.enqueue('hang');
    const ac = new AbortController();
    const reason = new Error('job canceled');
    setTimeout(() => ac.abort(reason), 30);
    await expect(client().getTask('run_2abc', { signal: ac.signal })).rejects.toBe(reason);
  });

  it('an aborted gate stops the call before any request', async () => {
    const ac = new AbortController();
    const reason = new Error('deadline');
    const gate = (_k: 'create' | 'poll', signal?: AbortSignal) =>
      new Promise<void>((_resolve, reject) => signal?.addEventListener('abort', () => reject(signal.reason)));
    setTimeout(() => ac.abort(reason), 20);
    await expect(client().createTask(input(), { gate, signal: ac.signal })).rejects.toBe(reason);
    expect(server.requests).toHaveLength(0);
  });

  it('works over an injected dispatcher (undici MockAgent)', async () => {
    const agent = new MockAgent();
    agent.disableNetConnect();
    const pool = agent.get('https://runbase.test');
    pool
      .intercept({ path: '/api/v1/runs', method: 'POST', headers: { authorization: `Bearer ${API_KEY}` } })
      .reply(200, run({ id: 'run_mock' }), { headers: { 'content-type': 'application/json' } });
    pool
      .intercept({ path: '/api/v1/runs/run_mock', method: 'GET' })
      .reply(200, run({ id: 'run_mock', status: 'succeeded', output: { urls: ['https://cdn.test/a.png'] } }));
    const c = new RunbaseClient({ apiKey: API_KEY, baseUrl: 'https://runbase.test/api/v1', dispatcher: agent });
    expect((await c.createTask(input())).taskId).toBe('run_mock');
    expect((await c.getTask('run_mock')).outputUrls).toEqual(['https://cdn.test/a.png']);
    agent.assertNoPendingInterceptors();
    await agent.close();
  });
});
