/**
 * The engine against the fake RunBlob: creativity and references as data URLs, completion
 * callbacks as hints (an unguessable token in the URL; forged tokens 404; replays ignored).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { startHttpServer, type HttpServer } from '../../src/platforms/http/server.ts';
import { randomBase62 } from '../../src/engine/ids.ts';
import { InsufficientCreditsError } from '../../src/providers/errors.ts';
import { startFakeRunblob, type FakeRunblob } from '../fakes/runblob.ts';
import { renderPng } from '../fakes/png.ts';
import { discordUser, FAST_TIMING, startEngineHarness, tempDir, type EngineHarness } from './engine-harness.ts';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** Polling so slow (first poll after ≥ 6 s) that only a callback can finish a task quickly. */
const SLOW_POLLING = {
  ...FAST_TIMING,
  deadlineMs: 20_000,
  expectedMs: () => 20_000,
  scheduler: { ...FAST_TIMING.scheduler, maxIntervalMs: 10_000, tailCapMs: 10_000 },
};

async function setup(
  fakeOpts: Parameters<typeof startFakeRunblob>[0] = {},
  o: { publicUrl?: boolean; timing?: typeof FAST_TIMING } = {},
): Promise<{ fake: FakeRunblob; h: EngineHarness; http: HttpServer }> {
  const fake = await startFakeRunblob({ durationMs: 80, ...fakeOpts });
  cleanups.push(() => fake.close());
  const http = await startHttpServer(0, pino({ level: 'silent' }), '127.0.0.1');
  cleanups.push(() => http.close());
  const h = await startEngineHarness(
    {
      RUNBLOB_API_KEY: fake.apiKey,
      RUNBLOB_API_URL: fake.url,
      ...(o.publicUrl === false ? {} : { PUBLIC_URL: http.localUrl }),
    },
    { http, ...(o.timing ? { timing: o.timing } : {}) },
  );
  cleanups.push(() => h.close());
  return { fake, h, http };
}

const request = (over: Record<string, unknown> = {}) => ({
  prompt: 'a cat on a windowsill',
  model: 'runblob-pro',
  ratio: '4:3' as const,
  resolution: '1K' as const,
  count: 1,
  requester: discordUser(),
  ...over,
});

describe('engine on RunBlob', () => {
  it('sends creativity as temperature and a reference file as a data URL, and makes the image', async () => {
    const { fake, h } = await setup({}, { publicUrl: false });
    const dir = await tempDir('ref-');
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const refPath = join(dir, 'ref.png');
    await writeFile(refPath, await renderPng({ width: 64, height: 48, seed: 1 }));
    const job = await h.engine.submit(request({ creativity: 0.3, references: [{ kind: 'file', path: refPath }] }));
    const done = await h.engine.waitFor(job.id);
    expect(done.state).toBe('succeeded');
    const body = fake.requests.find((r) => r.kind === 'create')!.body as Record<string, unknown>;
    expect(body).toMatchObject({ prompt: 'a cat on a windowsill', model: 'pro', aspect_ratio: '4:3', temperature: 0.3 });
    expect(body.callback_url).toBeUndefined(); // no PUBLIC_URL: polling only
    expect((body.images as string[])[0]).toMatch(/^data:image\/png;base64,/);
  });

  it('402 INSUFFICIENT_CREDITS on create fails the job with the operator sentence and refunds', async () => {
    const { h } = await setup({ balanceUsd: 0 });
    const job = await h.engine.submit(request({ count: 2 }));
    const done = await h.engine.waitFor(job.id);
    expect(done.state).toBe('failed');
    expect(done.error).toMatchObject({
      code: 'PROVIDER_NO_CREDITS',
      userMessage: new InsufficientCreditsError({ provider: 'runblob', message: '' }).userMessage,
    });
    expect((await h.engine.quota(discordUser())).used).toBe(0);
  });

  it.each([
    [401, 'PROVIDER_AUTH', "The bot's API key for the image service was refused."],
    [422, 'PROVIDER_INVALID_REQUEST', 'The image service refused these options.'],
    [503, 'PROVIDER_SERVER_ERROR', 'The image service had an internal error.'],
  ])('create answered %i → %s, refunded', async (status, code, sentenceStart) => {
    const { fake, h } = await setup();
    fake.injectFault({ match: 'create', status, times: 5 });
    const job = await h.engine.submit(request());
    const done = await h.engine.waitFor(job.id);
    expect(done.state).toBe('failed');
    expect(done.error?.code).toBe(code);
    expect(done.error?.userMessage.startsWith(sentenceStart)).toBe(true);
    expect((await h.engine.quota(discordUser())).used).toBe(0);
    expect(h.deliverer.delivered).toHaveLength(1);
  });

  it('a task failing with MODERATION_FAILED is reported with its sentence', async () => {
    const { h } = await setup();
    const job = await h.engine.submit(request({ prompt: 'x [fail:MODERATION_FAILED]' }));
    const done = await h.engine.waitFor(job.id);
    expect(done.error?.code).toBe('TASK_MODERATION_FAILED');
    expect((await h.engine.quota(discordUser())).used).toBe(0);
  });
});

describe('engine: RunBlob callbacks', () => {
  it('a real callback triggers the status fetch that finishes the task (long before the first poll)', async () => {
    const { fake, h, http } = await setup({ durationMs: 100 }, { timing: SLOW_POLLING });
    const started = Date.now();
    const job = await h.engine.submit(request());
    const done = await h.engine.waitFor(job.id);
    expect(done.state).toBe('succeeded');
    expect(Date.now() - started).toBeLessThan(3_000); // the first scheduled poll is ≥ 6 s away
    const url = (fake.requests.find((r) => r.kind === 'create')!.body as { callback_url: string }).callback_url;
    expect(url).toMatch(new RegExp(`^${http.localUrl}/callbacks/runblob/[0-9A-Za-z]{32}$`));
    await fake.callbacksSettled();
    expect(fake.callbacks).toHaveLength(1);
    expect(fake.callbacks[0]).toMatchObject({ ok: true, status: 200 });
    expect(fake.counts.get).toBe(1);
  });

  it('a callback that comes before the create answer still finishes the task at once (not at the first poll)', async () => {
    // The task ends as it is created and calls back at once; the create's answer is held 300 ms.
    const { fake, h } = await setup({ durationMs: 0 }, { timing: SLOW_POLLING });
    fake.injectFault({ match: 'create', delayAnswerMs: 300 });
    const started = Date.now();
    const job = await h.engine.submit(request());
    const done = await h.engine.waitFor(job.id);
    expect(done.state).toBe('succeeded');
    expect(Date.now() - started).toBeLessThan(3_000); // the first scheduled poll is ≥ 6 s away
    await fake.callbacksSettled();
    const create = fake.requests.find((r) => r.kind === 'create')!;
    expect(fake.callbacks[0]).toMatchObject({ ok: true, status: 200 });
    expect(fake.callbacks[0]!.sentAt - create.at).toBeLessThan(300); // it came before the create's answer
    expect(fake.counts.get).toBe(1);
  });

  describe('polls are a safety net only where the callback comes back to the process running the job', () => {
    // Expected 1 s: the normal plan's first poll is at 0.81 s, the safety net's at 1.5 s. The
    // fake finishes at 300 ms and never calls back, so the first poll is what finds the result.
    const PLAN_TIMING = {
      ...FAST_TIMING,
      expectedMs: () => 1_000,
      heartbeatIntervalMs: 100,
      heartbeatTtlMs: 300,
      scheduler: { ...FAST_TIMING.scheduler, firstPollFraction: 0.5, minIntervalMs: 100, maxIntervalMs: 500 },
    };
    const firstPollAfterCreate = (fake: FakeRunblob) => {
      const create = fake.requests.find((r) => r.kind === 'create')!;
      return fake.requests.find((r) => r.kind === 'get')!.at - create.at;
    };

    it('this process serves the callback route and is alone: the first poll waits for 1.5 × the expected time', async () => {
      const { fake, h } = await setup({ durationMs: 300, callbacks: { mode: 'drop' } }, { timing: PLAN_TIMING });
      await h.engine.waitFor((await h.engine.submit(request())).id);
      expect(firstPollAfterCreate(fake)).toBeGreaterThanOrEqual(1_400);
    });

    it('PUBLIC_URL set but no callback route here (the CLI): the normal plan', async () => {
      const fake = await startFakeRunblob({ durationMs: 300, callbacks: { mode: 'drop' } });
      cleanups.push(() => fake.close());
      const h = await startEngineHarness({ RUNBLOB_API_KEY: fake.apiKey, RUNBLOB_API_URL: fake.url, PUBLIC_URL: 'http://127.0.0.1:9/' }, { timing: PLAN_TIMING });
      cleanups.push(() => h.close());
      await h.engine.waitFor((await h.engine.submit(request())).id);
      expect((fake.requests.find((r) => r.kind === 'create')!.body as { callback_url?: string }).callback_url).toBeDefined();
      expect(firstPollAfterCreate(fake)).toBeLessThan(1_200);
    });

    it('a callback token the store refuses: the create goes without a callback URL, is polled on the normal plan, and the job succeeds', async () => {
      const { fake, h } = await setup({ durationMs: 300, callbacks: { mode: 'drop' } }, { timing: PLAN_TIMING });
      const set = h.store.kv.set.bind(h.store.kv);
      h.store.kv.set = (async (key: string, value: unknown, ttl?: number) => {
        if (key.startsWith('cb:')) throw new Error('Socket closed unexpectedly');
        return set(key, value, ttl);
      }) as typeof h.store.kv.set;
      const done = await h.engine.waitFor((await h.engine.submit(request())).id);
      expect(done.state).toBe('succeeded');
      expect((fake.requests.find((r) => r.kind === 'create')!.body as { callback_url?: string }).callback_url).toBeUndefined();
      expect(firstPollAfterCreate(fake)).toBeLessThan(1_200);
      expect(h.logLines.some((l) => l.includes('could not store a callback token'))).toBe(true);
    });

    it('a resumed job (a callback may have come while it was elsewhere): the normal plan', async () => {
      const { fake, h } = await setup({ durationMs: 300, callbacks: { mode: 'drop' } }, { timing: PLAN_TIMING });
      const job = await h.engine.submit(request());
      // The restart: the first process stops once the create is answered (its task id recorded).
      while (!(await h.engine.getJob(job.id))?.tasks[0]?.taskId) await new Promise((r) => setTimeout(r, 10));
      await h.engine.close();
      expect(fake.requests.filter((r) => r.kind === 'get')).toEqual([]);
      const next = await h.restart({ timing: PLAN_TIMING });
      await next.resume();
      await next.waitFor(job.id);
      expect(firstPollAfterCreate(fake)).toBeLessThan(1_200);
    });

    it('another live process shares the store (PUBLIC_URL may reach it instead): the normal plan', async () => {
      const { fake, h } = await setup({ durationMs: 300, callbacks: { mode: 'drop' } }, { timing: PLAN_TIMING });
      await h.restart({ timing: PLAN_TIMING, processId: 'peer-process' });
      await new Promise((r) => setTimeout(r, 400)); // a heartbeat look sees the peer
      await h.engine.waitFor((await h.engine.submit(request())).id);
      expect(firstPollAfterCreate(fake)).toBeLessThan(1_200);
    });
  });

  it('a forged token gets 404 and triggers no fetch; a replayed callback triggers no second fetch', async () => {
    // The task runs for 3 s, so it is still watched while we post callbacks by hand.
    const { fake, h, http } = await setup({ durationMs: 3_000, callbacks: { mode: 'drop' } }, { timing: SLOW_POLLING });
    const job = await h.engine.submit(request());
    await waitUntil(async () => (await h.engine.getJob(job.id))?.tasks[0]?.taskId !== undefined);
    const url = (fake.requests.find((r) => r.kind === 'create')!.body as { callback_url: string }).callback_url;
    const taskUuid = (await h.engine.getJob(job.id))!.tasks[0]!.taskId!;
    const post = (to: string) =>
      fetch(to, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ task_uuid: taskUuid, status: 'completed', result_image_url: 'https://evil.example/x.png', message: null }),
      });

    const forged = await post(`${http.localUrl}/callbacks/runblob/${randomBase62(32)}`);
    expect(forged.status).toBe(404);
    expect((await post(`${http.localUrl}/callbacks/runblob/not-a-token`)).status).toBe(404);
    await sleep(150);
    expect(fake.counts.get).toBe(0);

    const first = await post(url);
    expect(first.status).toBe(200);
    await waitUntil(() => fake.counts.get === 1);
    const replay = await post(url);
    expect(replay.status).toBe(200);
    await sleep(200);
    expect(fake.counts.get).toBe(1);
    // The forged "completed" body was not believed: the task is still running.
    const now = await h.engine.getJob(job.id);
    expect(now?.state).not.toBe('succeeded');
    expect(now?.tasks[0]?.outputUrl).toBeUndefined();
  });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(10);
  }
}
