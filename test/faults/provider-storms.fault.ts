/**
 * Provider faults at volume, through the engine (test/integration/engine-harness.ts): 20 jobs
 * under a 5xx storm, a 429 storm with Retry-After, and a provider that never answers. Each job
 * is answered exactly once (delivered, or failed with the catalogue's sentence), created at most
 * once at the provider, and charged only for what it made. `npm run test:faults` only.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { JobRecord } from '../../src/engine/job.ts';
import { startFakeRunbase, type FakeRunbase } from '../fakes/runbase.ts';
import { FAST_TIMING, startEngineHarness, type EngineHarness } from '../integration/engine-harness.ts';

const JOBS = 20;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function setup(timing = FAST_TIMING): Promise<{ fake: FakeRunbase; h: EngineHarness }> {
  const fake = await startFakeRunbase({ durationMs: 200, rateLimit: { requests: 20, windowMs: 1_000 } });
  cleanups.push(() => fake.close());
  const h = await startEngineHarness({ RUNBASE_API_KEY: fake.apiKey, RUNBASE_API_URL: fake.url }, { timing });
  cleanups.push(() => h.close());
  return { fake, h };
}

const user = (i: number) => ({ platform: 'discord' as const, userId: `storm-${i}` });

/** Submits JOBS one-image jobs (one user each) and waits for them all. */
async function runJobs(h: EngineHarness): Promise<JobRecord[]> {
  const jobs = await Promise.all(
    Array.from({ length: JOBS }, (_, i) =>
      h.engine.submit({ prompt: `storm ${i}`, model: 'runbase-pro', ratio: '1:1', resolution: '1K', count: 1, requester: user(i), location: { channelId: 'c1' } }),
    ),
  );
  return Promise.all(jobs.map((j) => h.engine.waitFor(j.id)));
}

/** Each job delivered once; each user charged 1 unit for a success, 0 for a failure; no task created twice. */
async function expectAnsweredOnce(h: EngineHarness, fake: FakeRunbase, done: JobRecord[]): Promise<void> {
  await new Promise((r) => setTimeout(r, 200));
  for (const job of done) {
    expect(h.deliverer.delivered.filter((d) => d.id === job.id), job.id).toHaveLength(1);
    if (job.state === 'failed') expect(job.error?.userMessage).toBeTruthy();
  }
  const used = await Promise.all(done.map((_, i) => h.engine.quota(user(i)).then((q) => q.used)));
  expect(used).toEqual(done.map((j) => (j.state === 'succeeded' ? 1 : 0)));
  const prompts = [...fake.runs.values()].map((r) => r.prompt);
  expect(new Set(prompts).size).toBe(prompts.length);
}

describe('fault: provider storms', () => {
  it('a 5xx storm on creates, polls and downloads: every job answered once, nothing created or charged twice', async () => {
    const { fake, h } = await setup({ ...FAST_TIMING, deadlineMs: 30_000 });
    const started = Date.now();
    // A 500 on a create may have created the run: never repeated, that job fails (refunded).
    fake.injectFault({ match: 'create', status: 500, times: 3 });
    fake.injectFault({ match: 'get', status: 503, times: 40 });
    fake.injectFault({ match: 'get', status: 500, times: 20 });
    fake.injectFault({ match: 'download', status: 502, times: 5 });
    const done = await runJobs(h);
    const failed = done.filter((j) => j.state === 'failed');
    console.log(`[faults] 5xx storm: ${JOBS - failed.length}/${JOBS} succeeded, ${failed.length} failed (${failed.map((j) => j.error?.code).join(', ')}) in ${((Date.now() - started) / 1000).toFixed(1)} s, ${fake.counts.total} provider requests`);
    expect(failed.map((j) => j.error?.code)).toEqual(['PROVIDER_SERVER_ERROR', 'PROVIDER_SERVER_ERROR', 'PROVIDER_SERVER_ERROR']);
    await expectAnsweredOnce(h, fake, done);
  });

  it('a 429 storm with Retry-After: every job still succeeds, each created and charged once', async () => {
    const { fake, h } = await setup({ ...FAST_TIMING, deadlineMs: 30_000 });
    fake.injectFault({ match: 'any', status: 429, headers: { 'retry-after': '1' }, times: 60 });
    const started = Date.now();
    const done = await runJobs(h);
    console.log(`[faults] 429 storm: ${done.filter((j) => j.state === 'succeeded').length}/${JOBS} succeeded in ${((Date.now() - started) / 1000).toFixed(1)} s, ${fake.counts.rateLimited} answers 429`);
    expect(done.every((j) => j.state === 'succeeded')).toBe(true);
    expect(fake.runs.size).toBe(JOBS);
    await expectAnsweredOnce(h, fake, done);
  });

  it('a provider that never answers: every job fails at its deadline with the sentence, refunded, answered once', async () => {
    const { fake, h } = await setup({ ...FAST_TIMING, deadlineMs: 2_000 });
    fake.injectFault({ match: 'any', delayMs: 600_000, times: 10_000 });
    const started = Date.now();
    const done = await runJobs(h);
    const took = Date.now() - started;
    const codes = [...new Set(done.map((j) => j.error?.code))];
    console.log(`[faults] provider never answers: ${done.filter((j) => j.state === 'failed').length}/${JOBS} failed (${codes.join(', ')}) after ${(took / 1000).toFixed(1)} s`);
    expect(done.every((j) => j.state === 'failed')).toBe(true);
    expect(took).toBeLessThan(15_000);
    await expectAnsweredOnce(h, fake, done);
  });
});
