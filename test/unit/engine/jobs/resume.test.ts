/**
 * Resume and takeover (jobs/resume.ts) through the engine: leases decide who runs a job.
 */
import { describe, expect, it } from 'vitest';
import type { JobRecord } from '../../../../src/engine/job.ts';
import { jobKey, UNFINISHED_JOBS_KEY } from '../../../../src/engine/jobs/records.ts';
import { build, req, store, TIMING, useEngineFixture } from '../engine-fixture.ts';

useEngineFixture();

describe('resume and takeover', () => {
  it('does not resume a job another live process holds', async () => {
    const { engine, client } = build({ processId: 'me' });
    const job = await engine.submit(req());
    await engine.waitFor(job.id);
    // Plant an unfinished copy owned by someone else.
    const copy = { ...(await engine.getJob(job.id))!, id: 'otherJob0001', state: 'queued' as const, deliveredAt: undefined };
    copy.tasks = [{ index: 0, status: 'unsubmitted' }];
    copy.quota = { ...copy.quota, settled: false };
    await store.kv.set(jobKey(copy.id), copy);
    await store.setAdd(UNFINISHED_JOBS_KEY, copy.id);
    expect(await store.lease('lease:job:otherJob0001', 'someone-else', 60_000)).toBe(true);
    const creates = client.creates.length;
    expect(await engine.resume()).toBe(0);
    expect(client.creates.length).toBe(creates);
    await store.releaseLease('lease:job:otherJob0001', 'someone-else');
    expect(await engine.resume()).toBe(1);
    expect((await engine.waitFor(copy.id)).state).toBe('succeeded');
  });
  it('takes over, on its own, the jobs of a process that died (lease expired), but not one whose delivery gave up', async () => {
    const { engine: first } = build({ processId: 'first' });
    const base = await first.submit(req());
    await first.waitFor(base.id);
    const { engine, client } = build({ processId: 'survivor', timing: { ...TIMING, takeoverIntervalMs: 30 } });
    const plant = async (id: string, state: JobRecord['state'], deliveryAttempts?: number) => {
      const job: JobRecord = { ...(await first.getJob(base.id))!, id, state };
      delete job.deliveredAt;
      if (deliveryAttempts !== undefined) job.deliveryAttempts = deliveryAttempts;
      job.tasks = [{ index: 0, status: 'unsubmitted' }];
      job.quota = { ...job.quota, settled: state !== 'queued' };
      await store.kv.set(jobKey(id), job);
      await store.setAdd(UNFINISHED_JOBS_KEY, id);
      await store.lease(`lease:job:${id}`, 'dead-process', 150);
    };
    const { deliverer } = build({ processId: 'unused' });
    engine.setDeliverer('discord', deliverer);
    await plant('orphanJob001', 'queued');
    // Died between finishing a job and delivering it: the survivor delivers it.
    await plant('undelivered1', 'failed');
    // Its delivery failed every attempt (1 + TIMING.deliveryRetryDelaysMs): it waits for the next start.
    await plant('gaveUpJob001', 'failed', 2);
    const creates = client.creates.length;
    await new Promise((r) => setTimeout(r, 60));
    expect(client.creates.length).toBe(creates); // still leased by the dead process
    const done = await engine.waitFor('orphanJob001');
    expect(done.state).toBe('succeeded');
    expect(client.creates.length).toBe(creates + 1);
    while (!(await store.kv.get<JobRecord>(jobKey('undelivered1')))!.deliveredAt) await new Promise((r) => setTimeout(r, 10));
    expect(deliverer.delivered.map((j) => j.id).sort()).toEqual(['orphanJob001', 'undelivered1']);
    expect((await store.kv.get<JobRecord>(jobKey('gaveUpJob001')))!.deliveredAt).toBeUndefined();
    while ((await store.setMembers(UNFINISHED_JOBS_KEY)).length > 1) await new Promise((r) => setTimeout(r, 10));
    expect(await store.setMembers(UNFINISHED_JOBS_KEY)).toEqual(['gaveUpJob001']);
  });
});
