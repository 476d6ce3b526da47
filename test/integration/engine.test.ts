/**
 * The engine against the fake Runbase and RunBlob: real store (SQLite temp file), real quotas,
 * real provider clients, real poll scheduler, time scaled down.
 */
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { startHttpServer } from '../../src/platforms/http/server.ts';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DeadlineExceededError } from '../../src/engine/errors.ts';
import { sniffFile } from '../../src/engine/image-sniff.ts';
import type { JobRecord } from '../../src/engine/job.ts';
import {
  AuthenticationError,
  InsufficientCreditsError,
  InvalidRequestError,
  ProviderServerError,
  TaskNotFoundError,
  KeyPolicyError,
  MalformedResponseError,
  TASK_FAILURE_SENTENCES,
} from '../../src/providers/errors.ts';
import { startFakeRunbase, type FakeRunbase } from '../fakes/runbase.ts';
import { outputSize, renderPng } from '../fakes/png.ts';
import { discordUser, FAST_TIMING, TEST_RATE_LIMIT, startEngineHarness, type EngineHarness } from './engine-harness.ts';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function runbaseSetup(
  fakeOpts: Parameters<typeof startFakeRunbase>[0] = {},
  harnessOpts: Parameters<typeof startEngineHarness>[1] = {},
): Promise<{ fake: FakeRunbase; h: EngineHarness }> {
  const fake = await startFakeRunbase({ durationMs: 80, rateLimit: TEST_RATE_LIMIT, ...fakeOpts });
  cleanups.push(() => fake.close());
  const h = await startEngineHarness({ RUNBASE_API_KEY: fake.apiKey, RUNBASE_API_URL: fake.url }, harnessOpts);
  cleanups.push(() => h.close());
  return { fake, h };
}

describe('engine on Runbase', () => {
  it('makes two images in parallel, stores them on disk at the right size, persists and delivers the job', async () => {
    const { fake, h } = await runbaseSetup();
    const job = await h.engine.submit({
      prompt: 'a ceramic lamp',
      model: 'runbase-2',
      ratio: '16:9',
      resolution: '2K',
      count: 2,
      requester: discordUser(),
      location: { channelId: 'c1' },
    });
    expect(job.state).toBe('queued');
    expect(job.id).toMatch(/^[0-9A-Za-z]{12}$/);
    const done = await h.engine.waitFor(job.id);
    expect(done.state).toBe('succeeded');
    expect(done.deliveredAt).toBeTypeOf('number');
    expect(done.tasks).toHaveLength(2);
    const want = outputSize('16:9', '2K');
    for (const task of done.tasks) {
      expect(task.status).toBe('succeeded');
      expect(task.taskId).toMatch(/^run_/);
      const image = task.image!;
      expect(image.path).toMatch(new RegExp(`images/${job.id}/${task.index}\\.png$`));
      expect((await stat(image.path)).size).toBe(image.bytes);
      const sniffed = await sniffFile(image.path);
      expect(sniffed).toMatchObject({ mime: 'image/png', width: want.width, height: want.height });
      expect(image).toMatchObject({ width: want.width, height: want.height });
    }
    expect(fake.counts.create).toBe(2);
    // What Runbase received: the documented body.
    const creates = fake.requests.filter((r) => r.kind === 'create');
    expect(creates[0]!.body).toEqual({ model: 'google/nano-banana-2', input: { prompt: 'a ceramic lamp', aspect_ratio: '16:9', resolution: '2K' } });
    // Delivered once, with the images; progress went queued → generating → done.
    expect(h.deliverer.delivered.map((j) => j.id)).toEqual([job.id]);
    const phases = h.deliverer.events.filter((e) => e.changed).map((e) => e.phase);
    expect(phases[0]).toBe('queued');
    expect(phases).toContain('generating');
    expect(phases).toContain('downloading');
    expect(phases.at(-1)).toBe('done');
    // Persisted: the store has the final record; the quota keeps the 4 units (2 × 2K).
    const stored = await h.engine.getJob(job.id);
    expect(stored).toMatchObject({ state: 'succeeded', quota: { reserved: 4, refunded: 0, settled: true } });
    expect((await h.engine.quota(discordUser())).used).toBe(4);
    expect(await h.store.setMembers('jobs:unfinished')).toEqual([]);
  });
});

const oneImage = (prompt = 'a red fox in the snow', count = 1) => ({
  prompt,
  model: 'runbase-pro',
  ratio: '1:1' as const,
  resolution: '2K' as const,
  count,
  requester: discordUser(),
});

/** The failed job as the user sees it: its code and sentence, the quota given back, delivered once. */
async function expectFailedAndRefunded(h: EngineHarness, job: JobRecord, code: string, userMessage: string) {
  const done = await h.engine.waitFor(job.id);
  expect(done.state).toBe('failed');
  expect(done.error).toMatchObject({ code, userMessage });
  expect(done.tasks.every((t) => t.status === 'failed' && t.error?.code === code)).toBe(true);
  expect(done.quota).toMatchObject({ reserved: job.quota.reserved, refunded: job.quota.reserved, settled: true });
  expect((await h.engine.quota(discordUser())).used).toBe(0);
  expect(h.deliverer.delivered.filter((j) => j.id === job.id)).toHaveLength(1);
  expect(h.deliverer.delivered[0]!.error?.userMessage).toBe(userMessage);
  return done;
}

describe('engine: every documented Runbase error reaches the user with a refund', () => {
  const sentence = (E: new (init: { provider: 'runbase'; message: string }) => { userMessage: string }) =>
    new E({ provider: 'runbase', message: '' }).userMessage;

  it.each([
    ['402 insufficient_balance', { status: 402 }, 'PROVIDER_NO_CREDITS', sentence(InsufficientCreditsError)],
    ['401 invalid_api_key', { status: 401 }, 'PROVIDER_AUTH', sentence(AuthenticationError)],
    ['403 api_key_spend_limit_exceeded', { status: 403, body: { error: { code: 'api_key_spend_limit_exceeded', message: 'spend limit' } } }, 'PROVIDER_KEY_POLICY', sentence(KeyPolicyError)],
    ['403 ip_not_allowed', { status: 403 }, 'PROVIDER_KEY_POLICY', sentence(KeyPolicyError)],
    ['429 USAGE_EXCEEDED (permanent)', { status: 429, body: { error: { code: 'USAGE_EXCEEDED', message: 'usage quota exceeded' } } }, 'PROVIDER_KEY_POLICY', sentence(KeyPolicyError)],
    ['a malformed create answer', { malformed: 'missing-fields' as const }, 'PROVIDER_MALFORMED_RESPONSE', sentence(MalformedResponseError)],
    ['a non-JSON create answer', { malformed: 'non-json' as const }, 'PROVIDER_MALFORMED_RESPONSE', sentence(MalformedResponseError)],
    ['400 invalid_input', { status: 400 }, 'PROVIDER_INVALID_REQUEST', sentence(InvalidRequestError)],
    // A 500 on a billable create may have created the run: never repeated.
    ['500', { status: 500 }, 'PROVIDER_SERVER_ERROR', sentence(ProviderServerError)],
  ])('create answered %s', async (_name, fault, code, userMessage) => {
    const { fake, h } = await runbaseSetup();
    fake.injectFault({ match: 'create', times: 10, ...fault });
    const job = await h.engine.submit(oneImage('a fox', 2));
    expect(job.quota.reserved).toBe(4);
    await expectFailedAndRefunded(h, job, code, userMessage);
    // None of these is retried: one create request per image (a repeated create could charge twice).
    expect(fake.counts.create).toBe(2);
  });

  it('a run that fails with MODERATION_FAILED', async () => {
    const { h } = await runbaseSetup();
    const job = await h.engine.submit(oneImage('a fox [fail:MODERATION_FAILED]'));
    await expectFailedAndRefunded(h, job, 'TASK_MODERATION_FAILED', TASK_FAILURE_SENTENCES.MODERATION_FAILED!);
  });

  it('a run whose status answers are malformed', async () => {
    const { fake, h } = await runbaseSetup({ durationMs: 300 });
    fake.injectFault({ match: 'get', times: 100, malformed: 'wrong-types' });
    const job = await h.engine.submit(oneImage());
    await expectFailedAndRefunded(h, job, 'PROVIDER_MALFORMED_RESPONSE', sentence(MalformedResponseError));
    expect(fake.counts.create).toBe(1);
  });

  it('a run the provider no longer knows (404 run_not_found)', async () => {
    const { fake, h } = await runbaseSetup({ durationMs: 300 });
    fake.injectFault({ match: 'get', times: 100, status: 404 });
    const job = await h.engine.submit(oneImage());
    await expectFailedAndRefunded(h, job, 'PROVIDER_NOT_FOUND', sentence(TaskNotFoundError));
  });

  it('a run stuck in an undocumented status fails at the job deadline', async () => {
    const { fake, h } = await runbaseSetup({ unknownStatus: { forMs: 60_000 } }, {
      timing: { ...FAST_TIMING, deadlineMs: 800 },
    });
    const job = await h.engine.submit(oneImage());
    const started = Date.now();
    const done = await expectFailedAndRefunded(h, job, 'DEADLINE_EXCEEDED', new DeadlineExceededError(1).userMessage);
    expect(Date.now() - started).toBeGreaterThanOrEqual(700);
    expect(fake.statusOf(done.tasks[0]!.taskId!)).toBe('weird_new_status');
    expect(fake.counts.get).toBeGreaterThan(1); // it kept polling until the deadline
  });
});

describe('engine: references on Runbase (URLs only)', () => {
  it('serves a local reference file at a short-lived URL under PUBLIC_URL, which Runbase fetches', async () => {
    const fake = await startFakeRunbase({ durationMs: 80, rateLimit: TEST_RATE_LIMIT, fetchReferences: true });
    cleanups.push(() => fake.close());
    const http = await startHttpServer(0, pino({ level: 'silent' }), '127.0.0.1');
    cleanups.push(() => http.close());
    const h = await startEngineHarness({ RUNBASE_API_KEY: fake.apiKey, RUNBASE_API_URL: fake.url, PUBLIC_URL: http.localUrl }, { http });
    cleanups.push(() => h.close());
    const refPath = join(h.dir, 'ref.png');
    await writeFile(refPath, await renderPng({ width: 40, height: 30, seed: 2 }));
    const job = await h.engine.submit({ ...oneImage('like this one'), references: [{ kind: 'file', path: refPath }] });
    const done = await h.engine.waitFor(job.id);
    expect(done.state).toBe('succeeded');
    const create = fake.requests.find((r) => r.kind === 'create')!.body as { input: { image_urls: string[] } };
    expect(create.input.image_urls).toHaveLength(1);
    expect(create.input.image_urls[0]).toMatch(new RegExp(`^${http.localUrl}/refs/[A-Za-z0-9_-]{40,}$`));
    const run = [...fake.runs.values()][0]!;
    expect(run.references).toHaveLength(1);
    expect(run.references[0]).toMatchObject({ ok: true });
  });
});

describe('engine: waiting well on Runbase', () => {
  it('survives a 429 RATE_LIMITED storm and still delivers', async () => {
    const { fake, h } = await runbaseSetup();
    fake.injectFault({ match: 'any', status: 429, times: 12 });
    const job = await h.engine.submit(oneImage('a fox', 2));
    const done = await h.engine.waitFor(job.id);
    expect(done.state).toBe('succeeded');
    expect(done.tasks.every((t) => t.image)).toBe(true);
    expect(fake.counts.rateLimited).toBeGreaterThanOrEqual(12);
    // 429 means "not created": exactly one charged run per image.
    expect(fake.runs.size).toBe(2);
    expect((await h.engine.quota(discordUser())).used).toBe(4);
  });

  it('runs 50 concurrent jobs on one key without a single 429 (rate window scaled to 1 s)', async () => {
    const window = { requests: 20, windowMs: 1_000 };
    const { fake, h } = await runbaseSetup(
      { rateLimit: window, durationMs: () => 150 + Math.floor(Math.random() * 300) },
      {
        timing: {
          ...FAST_TIMING,
          deadlineMs: 30_000,
          expectedMs: () => 300,
          // The fake shares this process's event loop (and 2 CPUs with parallel test files): a busy
          // loop delays sends after the budget stamped them. Production pads a 10 s window by
          // 250 ms; here a 1 s window gets 500 ms so CI load cannot bunch two windows' requests.
          rateLimits: { runbase: { ...window, windowPaddingMs: 500 } },
          scheduler: { ...FAST_TIMING.scheduler, minIntervalMs: 50, maxIntervalMs: 150, tailCapMs: 300 },
        },
      },
    );
    const jobs = await Promise.all(
      Array.from({ length: 50 }, (_, i) => h.engine.submit({ ...oneImage(`job ${i}`), requester: discordUser(`user${i}`) })),
    );
    const done = await Promise.all(jobs.map((j) => h.engine.waitFor(j.id)));
    expect(done.map((j) => j.state)).toEqual(Array(50).fill('succeeded'));
    expect(fake.counts.rateLimited).toBe(0);
    expect(fake.counts.create).toBe(50);
    // Sanity: the budget actually bound (more requests than one window allows).
    expect(fake.counts.create + fake.counts.get).toBeGreaterThan(60);
  }, 60_000);

  it('partial success: delivers the image that worked and refunds the one that failed', async () => {
    const { fake, h } = await runbaseSetup();
    let created = 0;
    fake.setOutcome(() => (++created === 2 ? { status: 'failed', code: 'MODERATION_FAILED' } : { status: 'succeeded' }));
    const job = await h.engine.submit(oneImage('two foxes', 2));
    const done = await h.engine.waitFor(job.id);
    expect(done.state).toBe('succeeded');
    expect(done.error).toBeUndefined();
    const failed = done.tasks.filter((t) => t.status === 'failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]!.error).toMatchObject({ code: 'TASK_MODERATION_FAILED', userMessage: TASK_FAILURE_SENTENCES.MODERATION_FAILED });
    expect(done.tasks.filter((t) => t.image)).toHaveLength(1);
    expect(done.quota).toMatchObject({ reserved: 4, refunded: 2, settled: true });
    expect((await h.engine.quota(discordUser())).used).toBe(2);
    expect(h.deliverer.delivered).toHaveLength(1);
  });

  it('retries a failing delivery, then marks the job delivered once', async () => {
    const { h } = await runbaseSetup();
    h.deliverer.failFirst = 2;
    const job = await h.engine.submit(oneImage());
    const done = await h.engine.waitFor(job.id);
    expect(done.deliveredAt).toBeTypeOf('number');
    expect(done.deliveryAttempts).toBe(2);
    expect(h.deliverer.delivered).toHaveLength(1);
    expect(h.deliverer.gaveUp).toEqual([]);
    expect(await h.store.setMembers('jobs:unfinished')).toEqual([]);
  });

  it('keeps a job whose delivery keeps failing in the unfinished set for the next start', async () => {
    const { h } = await runbaseSetup();
    h.deliverer.failFirst = 100;
    const job = await h.engine.submit(oneImage());
    const done = await h.engine.waitFor(job.id);
    expect(done.state).toBe('succeeded');
    expect(done.deliveredAt).toBeUndefined();
    expect(await h.store.setMembers('jobs:unfinished')).toEqual([job.id]);
    // The requester is told once that the images are made but could not be posted yet.
    await vi.waitFor(() => expect(h.deliverer.gaveUp).toHaveLength(1));
    expect(h.deliverer.gaveUp[0]!.job.id).toBe(job.id);
    expect(String(h.deliverer.gaveUp[0]!.err)).toContain('chat platform unavailable');
    // Next start: delivered, charged once.
    await h.engine.close();
    const next = await h.restart();
    h.deliverer.failFirst = 0;
    next.setDeliverer('discord', h.deliverer);
    expect(await next.resume()).toBe(1);
    const again = await next.waitFor(job.id);
    expect(again.deliveredAt).toBeTypeOf('number');
    expect(h.deliverer.delivered).toHaveLength(1);
    expect((await next.quota(discordUser())).used).toBe(2);
    expect(await h.store.setMembers('jobs:unfinished')).toEqual([]);
  });
});
