/**
 * Durability: a process killed with SIGKILL mid-job loses nothing. The next engine on the same
 * store resumes the job, polls the task already created (never creates it again: that would
 * charge twice), delivers once and charges the quota once. Also the gap a crash can leave (a
 * create sent but its task id never recorded), resume of queued tasks, and the Redis store.
 */
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import type { JobRecord } from '../../src/engine/job.ts';
import { jobKey } from '../../src/engine/jobs/records.ts';
import { startFakeRunbase } from '../fakes/runbase.ts';
import { discordUser, FAST_TIMING, TEST_RATE_LIMIT, startEngineHarness, tempDir } from './engine-harness.ts';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function resumeWhenLeaseFree(engine: { resume(): Promise<number> }, timeoutMs = 8_000): Promise<number> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const n = await engine.resume();
    if (n > 0 || Date.now() > end) return n;
    await sleep(100);
  }
}

describe('engine: kill -9 and resume', () => {
  it('a job whose process was SIGKILLed after submission finishes in the next process, delivered and charged once', async () => {
    const fake = await startFakeRunbase({ durationMs: 1_500, rateLimit: TEST_RATE_LIMIT });
    cleanups.push(() => fake.close());
    const dir = await tempDir('engine-kill-');
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const keyPrefix = `kill${Date.now()}:`;

    const child = spawn('node_modules/.bin/node', ['test/integration/engine-worker.ts'], {
      env: { ...process.env, FAKE_URL: fake.url, FAKE_KEY: fake.apiKey, WORK_DIR: dir, KEY_PREFIX: keyPrefix, COUNT: '2' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
    cleanups.push(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    const events: Array<{ event: string; jobId: string; taskIds?: string[] }> = [];
    const submitted = new Promise<{ jobId: string; taskIds: string[] }>((resolve, reject) => {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const event = JSON.parse(line);
        events.push(event);
        if (event.event === 'submitted') resolve(event);
      });
      child.once('exit', () => reject(new Error(`worker exited early: ${JSON.stringify(events)}`)));
    });
    const { jobId, taskIds } = await submitted;
    expect(child.kill('SIGKILL')).toBe(true);
    expect(await exited).toBe('SIGKILL');
    // Killed mid-job: the tasks are still running at the provider.
    expect(taskIds.map((id) => fake.statusOf(id))).not.toContain('succeeded');

    const h = await startEngineHarness(
      { RUNBASE_API_KEY: fake.apiKey, RUNBASE_API_URL: fake.url },
      { dir, keyPrefix, processId: 'successor', timing: { ...FAST_TIMING, deadlineMs: 30_000 } },
    );
    cleanups.push(() => h.close());
    const before = (await h.store.kv.get<JobRecord>(jobKey(jobId)))!;
    expect(before.state === 'submitted' || before.state === 'running').toBe(true);
    expect(before.tasks.map((t) => t.taskId)).toEqual(taskIds);

    // The dead worker's lease (1 s) must expire before another process may take the job.
    expect(await resumeWhenLeaseFree(h.engine)).toBe(1);
    const done = await h.engine.waitFor(jobId);
    expect(done.state).toBe('succeeded');
    expect(done.tasks.map((t) => t.taskId)).toEqual(taskIds);
    expect(done.tasks.every((t) => t.image && t.image.width > 0)).toBe(true);
    // Delivered once, by the successor; the worker never delivered.
    expect(h.deliverer.delivered.map((j) => j.id)).toEqual([jobId]);
    expect(events.filter((e) => e.event === 'delivered')).toEqual([]);
    // One create per image at the provider: no double charge.
    expect(fake.counts.create).toBe(2);
    expect(fake.runs.size).toBe(2);
    // Quota charged once: 2 images × 2K = 4 units.
    expect((await h.quotas.view({ platform: 'discord', userId: 'killed-user' })).used).toBe(4);
    expect(done.quota).toMatchObject({ reserved: 4, refunded: 0, settled: true });
    expect(await h.store.setMembers('jobs:unfinished')).toEqual([]);
    // A second resume finds nothing to do.
    expect(await h.engine.resume()).toBe(0);
  }, 30_000);
});

/** A job record as submit() writes it, for simulating what a crash leaves in the store. */
async function plantJob(
  h: Awaited<ReturnType<typeof startEngineHarness>>,
  id: string,
  tasks: JobRecord['tasks'],
): Promise<JobRecord> {
  const requester = discordUser('planted');
  const reservation = await h.quotas.reserve(requester, tasks.length);
  const now = Date.now();
  const job: JobRecord = {
    id,
    request: {
      prompt: 'a planted job',
      model: 'runbase-pro',
      ratio: '1:1',
      resolution: '1K',
      count: tasks.length,
      references: [],
      requester,
      location: {},
    },
    state: 'queued',
    createdAt: now,
    updatedAt: now,
    deadlineAt: now + 30_000,
    tasks,
    quota: { userKey: h.quotas.userKey(requester), day: reservation.day, reserved: reservation.reserved, refunded: 0, settled: false, spendReservedUsd: 0 },
  };
  await h.store.kv.set(jobKey(id), job);
  await h.store.setAdd('jobs:unfinished', id);
  return job;
}

describe('engine: resume of what a crash can leave', () => {
  it('submits tasks that were queued but never sent', async () => {
    const fake = await startFakeRunbase({ durationMs: 80, rateLimit: TEST_RATE_LIMIT });
    cleanups.push(() => fake.close());
    const h = await startEngineHarness({ RUNBASE_API_KEY: fake.apiKey, RUNBASE_API_URL: fake.url });
    cleanups.push(() => h.close());
    await plantJob(h, 'queuedJob001', [
      { index: 0, status: 'unsubmitted' },
      { index: 1, status: 'unsubmitted' },
    ]);
    expect(await h.engine.resume()).toBe(1);
    const done = await h.engine.waitFor('queuedJob001');
    expect(done.state).toBe('succeeded');
    expect(fake.counts.create).toBe(2);
    expect(h.deliverer.delivered).toHaveLength(1);
    expect((await h.quotas.view(discordUser('planted'))).used).toBe(2);
  });

  it('a create that may have landed without its id being recorded is failed and refunded, never re-sent', async () => {
    const fake = await startFakeRunbase({ durationMs: 80, rateLimit: TEST_RATE_LIMIT });
    cleanups.push(() => fake.close());
    const h = await startEngineHarness({ RUNBASE_API_KEY: fake.apiKey, RUNBASE_API_URL: fake.url });
    cleanups.push(() => h.close());
    await plantJob(h, 'gapJob000001', [
      { index: 0, status: 'unsubmitted', submittedAt: Date.now() - 1_000 },
      { index: 1, status: 'unsubmitted' },
    ]);
    expect(await h.engine.resume()).toBe(1);
    const done = await h.engine.waitFor('gapJob000001');
    // The uncertain task failed with its own code; the other one was sent and succeeded.
    expect(done.state).toBe('succeeded');
    expect(done.tasks[0]).toMatchObject({ status: 'failed', error: { code: 'SUBMISSION_UNKNOWN' } });
    expect(done.tasks[0]!.error!.userMessage).toMatch(/quota was refunded/);
    expect(done.tasks[1]!.status).toBe('succeeded');
    expect(fake.counts.create).toBe(1);
    expect(done.quota).toMatchObject({ reserved: 2, refunded: 1, settled: true });
    expect((await h.quotas.view(discordUser('planted'))).used).toBe(1);
  });

  it('close() while a create is on the wire records its task id: the next engine polls the task, never fails it as SUBMISSION_UNKNOWN', async () => {
    const fake = await startFakeRunbase({ durationMs: 200, rateLimit: TEST_RATE_LIMIT });
    cleanups.push(() => fake.close());
    const h = await startEngineHarness({ RUNBASE_API_KEY: fake.apiKey, RUNBASE_API_URL: fake.url });
    cleanups.push(() => h.close());
    // The provider takes 400 ms to answer the create: the restart comes while it is on the wire.
    fake.injectFault({ match: 'create', delayMs: 400 });
    const job = await h.engine.submit({ prompt: 'a restart mid-create', model: 'runbase-pro', ratio: '1:1', resolution: '1K', count: 1, requester: discordUser('wire-user') });
    for (let i = 0; i < 300 && fake.counts.create === 0; i++) await sleep(10);
    expect(fake.counts.create).toBe(1);
    await h.engine.close();
    const stored = (await h.store.kv.get<JobRecord>(jobKey(job.id)))!;
    expect(stored.tasks[0]!.taskId).toBeDefined();
    expect(stored.tasks[0]!.status).not.toBe('failed');

    const next = await h.restart({ processId: 'second' });
    next.setDeliverer('discord', h.deliverer);
    expect(await next.resume()).toBe(1);
    const done = await next.waitFor(job.id);
    expect(done.tasks[0]!.error).toBeUndefined();
    expect(done.state).toBe('succeeded');
    expect(done.tasks[0]!.taskId).toBe(stored.tasks[0]!.taskId);
    // One create, charged once, delivered once.
    expect(fake.counts.create).toBe(1);
    expect(done.quota).toMatchObject({ reserved: 1, refunded: 0, settled: true });
    expect(h.deliverer.delivered.map((j) => j.id)).toEqual([job.id]);
  });

  it('on Redis: close() mid-job keeps the job; the next engine resumes it without re-creating tasks', async () => {
    const fake = await startFakeRunbase({ durationMs: 700, rateLimit: TEST_RATE_LIMIT });
    cleanups.push(() => fake.close());
    const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    const h = await startEngineHarness(
      { RUNBASE_API_KEY: fake.apiKey, RUNBASE_API_URL: fake.url },
      { storeUrl: redisUrl, keyPrefix: `engine-test-${Date.now()}-${process.pid}:` },
    );
    cleanups.push(() => h.close());
    const job = await h.engine.submit({
      prompt: 'a fox on redis',
      model: 'runbase-2',
      ratio: '9:16',
      resolution: '1K',
      count: 2,
      requester: discordUser('redis-user'),
    });
    for (let i = 0; i < 200; i++) {
      const now = await h.engine.getJob(job.id);
      if (now?.tasks.every((t) => t.taskId)) break;
      await sleep(10);
    }
    await h.engine.close();
    const stored = (await h.store.kv.get<JobRecord>(jobKey(job.id)))!;
    expect(stored.tasks.every((t) => t.taskId && (t.status === 'pending' || t.status === 'running'))).toBe(true);
    expect(await h.store.setMembers('jobs:unfinished')).toEqual([job.id]);

    const next = await h.restart({ processId: 'second' });
    next.setDeliverer('discord', h.deliverer);
    // close() released the lease: the successor takes over at once.
    expect(await next.resume()).toBe(1);
    const done = await next.waitFor(job.id);
    expect(done.error).toBeUndefined();
    expect(done.tasks.map((t) => t.error)).toEqual([undefined, undefined]);
    expect(done.state).toBe('succeeded');
    expect(fake.counts.create).toBe(2);
    expect(h.deliverer.delivered.map((j) => j.id)).toEqual([job.id]);
    expect((await next.quota(discordUser('redis-user'))).used).toBe(2);
    expect(await h.store.setMembers('jobs:unfinished')).toEqual([]);
  });
});
