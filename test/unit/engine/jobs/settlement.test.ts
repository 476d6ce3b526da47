/**
 * Settlement (jobs/settlement.ts) through the engine: refunds and spend corrections, exactly once
 * even when the process dies at any store write.
 */
import { describe, expect, it } from 'vitest';
import type { JobRecord } from '../../../../src/engine/job.ts';
import { jobKey, UNFINISHED_JOBS_KEY } from '../../../../src/engine/jobs/records.ts';
import { InvalidRequestError, ProviderServerError } from '../../../../src/providers/errors.ts';
import { build, crashAtWrite, FIRST_MADE_SECOND_FAILED, req, store, useEngineFixture, user } from '../engine-fixture.ts';

useEngineFixture();

describe('settlement', () => {
  it('corrects the spend counter to the reported costs (failed Runbase runs cost nothing)', async () => {
    const { engine, quotas, client } = build({ spendCapUsd: 10 });
    client.script = (taskId, poll) =>
      poll < 2
        ? { taskId, status: 'running', outputUrls: [] }
        : taskId === 'task2'
          ? { taskId, status: 'failed', outputUrls: [], costUsd: 0, failure: { code: 'MODERATION_FAILED', message: 'no' } }
          : { taskId, status: 'succeeded', outputUrls: [`https://cdn.test/out/${taskId}.png`], costUsd: 0.05 };
    const job = await engine.submit(req({ count: 2 }));
    expect(await quotas.spentToday()).toBeCloseTo(0.26); // the estimate (2 × 0.13) while running
    const done = await engine.waitFor(job.id);
    expect(done.state).toBe('succeeded');
    expect(await quotas.spentToday()).toBeCloseTo(0.05);
    expect((await quotas.view(user)).used).toBe(1);
  });
  it('keeps the estimate on the spend counter for a create that may have landed, releases it for one surely refused', async () => {
    const { engine, quotas, client } = build({ spendCapUsd: 10 });
    client.createFailures = [
      new ProviderServerError({ provider: 'runbase', status: 500, message: 'boom' }),
      new InvalidRequestError({ provider: 'runbase', status: 400, providerCode: 'invalid_input', message: 'no' }),
    ];
    const done = await engine.waitFor((await engine.submit(req({ count: 2 }))).id);
    expect(done.state).toBe('failed');
    expect((await quotas.view(user)).used).toBe(0); // the user pays for neither
    expect(await quotas.spentToday()).toBeCloseTo(0.13); // the operator may have paid for one
  });
  it('settles a job once even when the process died between the refund and recording it', async () => {
    const { engine, quotas, client } = build();
    client.script = (taskId, poll) =>
      poll < 2 ? { taskId, status: 'running', outputUrls: [] } : { taskId, status: 'failed', outputUrls: [], failure: { code: 'TIMEOUT', message: 't' } };
    const job = await engine.submit(req({ count: 2 }));
    const done = await engine.waitFor(job.id);
    expect(done.quota).toMatchObject({ reserved: 2, refunded: 2, settled: true });
    expect((await quotas.view(user)).used).toBe(0);
    // Another job uses 2 units; then the first one reappears as if its `settled` write was lost.
    await quotas.reserve(user, 2);
    const replay: JobRecord = { ...done, quota: { ...done.quota, settled: false, refunded: 0 } };
    delete replay.deliveredAt;
    await store.kv.set(jobKey(job.id), replay);
    await store.setAdd(UNFINISHED_JOBS_KEY, job.id);
    expect(await engine.resume()).toBe(1);
    const again = await engine.waitFor(job.id);
    expect(again.quota.settled).toBe(true);
    // Not refunded a second time: the other job's 2 units are still counted.
    expect((await quotas.view(user)).used).toBe(2);
  });
  it.each([1, 2, 3, 4, 5].flatMap((at) => [{ at, when: 'before' as const }, { at, when: 'after' as const }]))(
    'charges exactly once when the process dies at settlement write $at ($when it lands), then resumes',
    async ({ at, when }) => {
      const { engine, quotas, client } = build();
      client.script = FIRST_MADE_SECOND_FAILED;
      const crash = crashAtWrite(store, at, when);
      const job = await engine.submit(req({ count: 2 }));
      const first = await engine.waitFor(job.id); // the run ends: finished, or stopped by the crash
      expect(first.state).toBe('succeeded');
      crash.disarm();
      // The next start finishes what is left (settlement, delivery), from the store alone.
      await engine.resume();
      await engine.waitFor(job.id);
      const stored = (await store.kv.get<JobRecord>(jobKey(job.id)))!;
      expect(stored.quota).toMatchObject({ reserved: 2, refunded: 1, settled: true });
      expect(stored.deliveredAt).toBeDefined();
      // The user paid for the one image made; the operator's spend is what the provider reported.
      expect((await quotas.view(user)).used).toBe(1);
      expect(await quotas.spentToday()).toBeCloseTo(0.05, 9);
      expect(crash.crashed).toBe(true);
    },
  );
});
