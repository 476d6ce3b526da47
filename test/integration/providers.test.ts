/**
 * The provider clients against the fake Runbase and RunBlob servers (test/fakes/), which were
 * written independently from docs/providers.md: what the clients send must be accepted,
 * and what the fakes answer (successes, failures, every error shape) must come out as the right
 * snapshot or error class.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { RunbaseClient } from '../../src/providers/runbase/client.ts';
import { RunblobClient } from '../../src/providers/runblob/client.ts';
import {
  AuthenticationError,
  InsufficientCreditsError,
  InvalidRequestError,
  KeyPolicyError,
  MalformedResponseError,
  ProviderServerError,
  TaskNotFoundError,
} from '../../src/providers/errors.ts';
import { sleep } from '../../src/util/sleep.ts';
import type { ProviderClient, TaskInput, TaskSnapshot } from '../../src/providers/types.ts';
import { startFakeRunbase, type FakeRunbaseOptions } from '../fakes/runbase.ts';
import { startFakeRunblob, type FakeRunblobOptions } from '../fakes/runblob.ts';

const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

/** Real waits, scaled down ten times so backoff stays short but real. */
const fastSleep = (ms: number, signal?: AbortSignal) => sleep(ms / 10, signal);

async function runbase(opts: FakeRunbaseOptions = {}, clientOpts: Partial<ConstructorParameters<typeof RunbaseClient>[0]> = {}) {
  const fake = await startFakeRunbase({ durationMs: 80, ...opts });
  const client = new RunbaseClient({ apiKey: fake.apiKey, baseUrl: fake.url, sleep: fastSleep, ...clientOpts });
  closers.push(async () => {
    await client.close();
    await fake.close();
  });
  return { fake, client };
}

async function runblob(opts: FakeRunblobOptions = {}, clientOpts: Partial<ConstructorParameters<typeof RunblobClient>[0]> = {}) {
  const fake = await startFakeRunblob({ durationMs: 80, ...opts });
  const client = new RunblobClient({ apiKey: fake.apiKey, baseUrl: fake.url, sleep: fastSleep, ...clientOpts });
  closers.push(async () => {
    await client.close();
    await fake.close();
  });
  return { fake, client };
}

/** Polls until the task ends (a small stand-in for the engine's scheduler). */
async function pollToEnd(client: ProviderClient, taskId: string, seen: string[] = []): Promise<TaskSnapshot> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const snap = await client.getTask(taskId);
    seen.push(snap.status);
    if (snap.status === 'succeeded' || snap.status === 'failed') return snap;
    if (Date.now() > deadline) throw new Error(`task ${taskId} still ${snap.status}`);
    await sleep(15);
  }
}

async function download(url: string): Promise<Buffer> {
  const res = await request(url);
  expect(res.statusCode).toBe(200);
  return Buffer.from(await res.body.arrayBuffer());
}

const runbaseInput = (over: Partial<TaskInput> = {}): TaskInput => ({
  prompt: 'A cinematic product photo of a ceramic lamp',
  model: 'google/nano-banana-pro',
  ratio: '16:9',
  resolution: '2K',
  references: [],
  ...over,
});

const runblobInput = (over: Partial<TaskInput> = {}): TaskInput => ({
  prompt: 'A cute orange cat sitting on a windowsill',
  model: 'pro',
  ratio: '1:1',
  resolution: '1K',
  references: [],
  creativity: 0.5,
  ...over,
});

describe('Runbase client × fake Runbase', () => {
  it('creates a run and polls it to success; the output is a PNG', async () => {
    const { fake, client } = await runbase();
    const created = await client.createTask(runbaseInput());
    expect(created.status).toBe('pending');
    expect(created.costUsd).toBeCloseTo(0.04, 10);
    const seen: string[] = [];
    const snap = await pollToEnd(client, created.taskId, seen);
    expect(snap.status).toBe('succeeded');
    expect(snap.outputUrls).toHaveLength(1);
    expect(seen[0]).not.toBe('succeeded');
    expect((await download(snap.outputUrls[0]!)).subarray(0, 8)).toEqual(PNG_MAGIC);
    expect(fake.counts.create).toBe(1);
    expect(fake.runs.get(created.taskId)?.resolution).toBe('2K');
  });

  it('a MODERATION_FAILED run ends failed with that code, refunded', async () => {
    for (const failedErrorAs of ['object', 'string'] as const) {
      const { fake, client } = await runbase({ failedErrorAs });
      const created = await client.createTask(runbaseInput({ prompt: 'something [fail:MODERATION_FAILED]' }));
      const snap = await pollToEnd(client, created.taskId);
      expect(snap.status).toBe('failed');
      expect(snap.failure?.code).toBe('MODERATION_FAILED');
      expect(snap.costUsd).toBe(0);
      expect(fake.spentMicros(fake.apiKey)).toBe(0);
    }
  });

  it('an undocumented status reads as running until the run ends', async () => {
    const { fake, client } = await runbase({ unknownStatus: { forMs: 150 }, durationMs: 300, rateLimit: false });
    const created = await client.createTask(runbaseInput());
    const seen: string[] = [];
    let sawWeird = false;
    const deadline = Date.now() + 5_000;
    for (;;) {
      sawWeird ||= fake.statusOf(created.taskId) === 'weird_new_status';
      const snap = await client.getTask(created.taskId);
      seen.push(snap.status);
      if (snap.status === 'succeeded' || Date.now() > deadline) break;
      await sleep(15);
    }
    expect(sawWeird).toBe(true);
    expect(seen.at(-1)).toBe('succeeded');
    expect(seen.every((s) => ['pending', 'running', 'succeeded'].includes(s))).toBe(true);
  });

  it('rides out a 429 storm: every create lands exactly once', async () => {
    const { fake, client } = await runbase({ rateLimit: { requests: 5, windowMs: 400 } }, { maxAttempts: 10 });
    const created = await Promise.all(Array.from({ length: 12 }, (_, i) => client.createTask(runbaseInput({ prompt: `lamp ${i}` }))));
    expect(new Set(created.map((c) => c.taskId)).size).toBe(12);
    expect(fake.counts.rateLimited).toBeGreaterThan(0);
    // A 429 RATE_LIMITED create did not land, so retrying it created no duplicate run.
    expect(fake.runs.size).toBe(12);
  });

  it('a gate that keeps to the budget sees every attempt and meets no 429', async () => {
    const { fake, client } = await runbase({ rateLimit: { requests: 4, windowMs: 300 } });
    const sent: number[] = [];
    const gate = async () => {
      for (;;) {
        const now = Date.now();
        while (sent.length && now - sent[0]! >= 320) sent.shift();
        if (sent.length < 4) {
          sent.push(now);
          return;
        }
        await sleep(320 - (now - sent[0]!));
      }
    };
    const created = await Promise.all(Array.from({ length: 8 }, () => client.createTask(runbaseInput(), { gate })));
    await Promise.all(created.map((c) => client.getTask(c.taskId, { gate })));
    expect(fake.counts.rateLimited).toBe(0);
    expect(fake.counts.create + fake.counts.get).toBe(16);
  });

  it('429 USAGE_EXCEEDED is permanent: one request, KeyPolicyError', async () => {
    const { fake, client } = await runbase({ keyPolicies: { 'sk-test-runbase': { usageExceeded: true } } });
    await expect(client.createTask(runbaseInput())).rejects.toBeInstanceOf(KeyPolicyError);
    expect(fake.requests).toHaveLength(1);
  });

  it('402 insufficient_balance → InsufficientCreditsError, not retried', async () => {
    const { fake, client } = await runbase({ balanceMicros: 1000 });
    const err = await client.createTask(runbaseInput()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InsufficientCreditsError);
    expect((err as InsufficientCreditsError).providerCode).toBe('insufficient_balance');
    expect(fake.requests).toHaveLength(1);
  });

  it('403 spend limit, 401 bad key, 404 unknown run', async () => {
    const { client } = await runbase({ keyPolicies: { 'sk-test-runbase': { spendLimitMicros: 10 } } });
    await expect(client.createTask(runbaseInput())).rejects.toBeInstanceOf(KeyPolicyError);
    await expect(client.getTask('run_doesnotexist')).rejects.toBeInstanceOf(TaskNotFoundError);
    const { fake } = await runbase();
    const wrongKey = new RunbaseClient({ apiKey: 'sk-not-a-real-key', baseUrl: fake.url });
    closers.push(() => wrongKey.close());
    await expect(wrongKey.createTask(runbaseInput())).rejects.toBeInstanceOf(AuthenticationError);
  });

  it('a create whose 500 answer was lost after it landed is not repeated (no double charge)', async () => {
    const { fake, client } = await runbase();
    fake.injectFault({ match: 'create', status: 500, handled: true });
    await expect(client.createTask(runbaseInput())).rejects.toBeInstanceOf(ProviderServerError);
    expect(fake.counts.create).toBe(1);
    expect(fake.runs.size).toBe(1);
  });

  it('a poll survives a dropped connection and a 500', async () => {
    const { fake, client } = await runbase();
    const created = await client.createTask(runbaseInput());
    fake.injectFault({ match: 'get', dropConnection: true });
    fake.injectFault({ match: 'get', status: 500 });
    const snap = await pollToEnd(client, created.taskId);
    expect(snap.status).toBe('succeeded');
  });

  it.each(['non-json', 'empty', 'missing-fields', 'wrong-types'] as const)('a malformed %s answer → MalformedResponseError', async (malformed) => {
    const { fake, client } = await runbase();
    const created = await client.createTask(runbaseInput());
    fake.injectFault({ match: 'get', malformed });
    await expect(client.getTask(created.taskId)).rejects.toBeInstanceOf(MalformedResponseError);
  });

  it('a data reference is refused locally; nano-banana-2 extended ratios are accepted', async () => {
    const { fake, client } = await runbase();
    await expect(client.createTask(runbaseInput({ references: [{ kind: 'data', dataUrl: 'data:image/png;base64,AAAA' }] }))).rejects.toBeInstanceOf(
      InvalidRequestError,
    );
    expect(fake.requests).toHaveLength(0);
    const created = await client.createTask(runbaseInput({ model: 'google/nano-banana-2', ratio: '8:1', resolution: '1K' }));
    expect((await pollToEnd(client, created.taskId)).status).toBe('succeeded');
  });
});

describe('RunBlob client × fake RunBlob', () => {
  it('creates a task and polls it to success; price in USD; the output is a PNG', async () => {
    const { fake, client } = await runblob();
    const created = await client.createTask(runblobInput({ resolution: '2K', ratio: '16:9' }));
    expect(created.status).toBe('pending');
    expect(created.costUsd).toBeCloseTo(0.04, 10);
    const snap = await pollToEnd(client, created.taskId);
    expect(snap.status).toBe('succeeded');
    expect(snap.outputUrls).toHaveLength(1);
    expect((await download(snap.outputUrls[0]!)).subarray(0, 8)).toEqual(PNG_MAGIC);
    const task = fake.tasks.get(created.taskId)!;
    expect(task.quality).toBe('2k');
    expect(task.temperature).toBe(0.5);
  });

  it('a MODERATION_FAILED task ends failed with that code', async () => {
    const { client } = await runblob();
    const created = await client.createTask(runblobInput({ prompt: 'cat [fail:MODERATION_FAILED]' }));
    const snap = await pollToEnd(client, created.taskId);
    expect(snap.status).toBe('failed');
    expect(snap.failure).toEqual({ code: 'MODERATION_FAILED', message: 'MODERATION_FAILED' });
  });

  it.each(['detail', 'success-false'] as const)('402 in the %s shape → InsufficientCreditsError, not retried', async (shape) => {
    const { fake, client } = await runblob({ balanceUsd: 0, insufficientCreditsShape: shape });
    const err = await client.createTask(runblobInput()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InsufficientCreditsError);
    expect((err as InsufficientCreditsError).providerCode).toBe('INSUFFICIENT_CREDITS');
    expect(fake.counts.create).toBe(1);
  });

  it('401, 404 and 422 from the service', async () => {
    const { fake, client } = await runblob();
    await expect(client.getTask('00000000-0000-0000-0000-000000000000')).rejects.toBeInstanceOf(TaskNotFoundError);
    const wrongKey = new RunblobClient({ apiKey: 'rb-wrong', baseUrl: fake.url });
    closers.push(() => wrongKey.close());
    await expect(wrongKey.createTask(runblobInput())).rejects.toBeInstanceOf(AuthenticationError);
    // Passes the client's syntax check, fails the service's decoding: a GIF sent as PNG.
    const gif = `data:image/png;base64,${Buffer.from('GIF89a\x01\x00\x01\x00\x00\x00\x00;').toString('base64')}`;
    const err = await client.createTask(runblobInput({ references: [{ kind: 'data', dataUrl: gif }] })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidRequestError);
    expect((err as InvalidRequestError).fields).toEqual(['images.0']);
  });

  it('polls survive 503s and dropped connections; a create 503 is not repeated', async () => {
    const { fake, client } = await runblob();
    fake.injectFault({ match: 'create', status: 503, handled: true });
    await expect(client.createTask(runblobInput())).rejects.toBeInstanceOf(ProviderServerError);
    expect(fake.tasks.size).toBe(1);
    const created = await client.createTask(runblobInput());
    fake.injectFault({ match: 'get', status: 503 });
    fake.injectFault({ match: 'get', dropConnection: true });
    expect((await pollToEnd(client, created.taskId)).status).toBe('succeeded');
  });

  it('an undocumented status reads as running; extra fields are tolerated', async () => {
    const { client } = await runblob({ unknownStatus: { forMs: 150 }, durationMs: 300 });
    const created = await client.createTask(runblobInput());
    const seen: string[] = [];
    expect((await pollToEnd(client, created.taskId, seen)).status).toBe('succeeded');
    expect(seen.every((s) => ['pending', 'running', 'succeeded'].includes(s))).toBe(true);
  });

  it.each(['non-json', 'missing-fields', 'wrong-types'] as const)('a malformed %s create answer → MalformedResponseError', async (malformed) => {
    const { fake, client } = await runblob();
    fake.injectFault({ match: 'create', malformed });
    await expect(client.createTask(runblobInput())).rejects.toBeInstanceOf(MalformedResponseError);
    expect(fake.counts.create).toBe(1);
  });

  it('lists recent tasks, newest first', async () => {
    const { fake, client } = await runblob();
    const first = await client.createTask(runblobInput({ prompt: 'first' }));
    await sleep(5);
    const second = await client.createTask(runblobInput({ prompt: 'second' }));
    const listed = await client.listTasks({ limit: 500, offset: 0 });
    expect(listed.map((t) => t.taskId)).toEqual([second.taskId, first.taskId]);
    expect(fake.requests.at(-1)?.query).toMatchObject({ limit: '100', offset: '0' });
  });

  it('reads the balance', async () => {
    const { client } = await runblob({ balanceUsd: 12.34 });
    expect(await client.getBalance()).toBeCloseTo(12.34, 10);
  });
});
