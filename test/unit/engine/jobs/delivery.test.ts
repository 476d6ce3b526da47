/**
 * Progress and delivery (jobs/delivery.ts) through the engine.
 */
import { describe, expect, it } from 'vitest';
import { UNFINISHED_JOBS_KEY } from '../../../../src/engine/jobs/records.ts';
import { build, logLines, onJobWrite, req, store, useEngineFixture } from '../engine-fixture.ts';

useEngineFixture();

describe('progress and delivery', () => {
  it('emits progress: changes at once, elapsed ticks in between, ending with done', async () => {
    const { engine, client, deliverer } = build();
    client.script = (taskId, poll) =>
      poll < 12 ? { taskId, status: 'running', outputUrls: [] } : { taskId, status: 'succeeded', outputUrls: [`https://cdn.test/out/${taskId}.png`] };
    const job = await engine.submit(req());
    await engine.waitFor(job.id);
    const changes = deliverer.events.filter((e) => e.changed);
    // What the placeholder shows: the provider's "running" reads as "Generating…" too, so it is no
    // change; once every image is in, the job is finishing, also before its state says so.
    expect(changes.map((e) => `${e.state}/${e.phase}/${e.done}`)).toEqual(['queued/queued/0', 'submitted/generating/0', 'running/downloading/0', 'running/done/1']);
    expect(deliverer.events.some((e) => !e.changed && e.phase === 'generating')).toBe(true);
    expect(deliverer.events.every((e) => e.total === 1 && e.jobId === job.id)).toBe(true);
  });
  it('a deliverer that would not show a tick now gets none (and no copy of the job), but every change it shows', async () => {
    const { engine, client, deliverer } = build();
    client.script = (taskId, poll) =>
      poll < 12 ? { taskId, status: 'running', outputUrls: [] } : { taskId, status: 'succeeded', outputUrls: [`https://cdn.test/out/${taskId}.png`] };
    const asked: string[] = [];
    Object.assign(deliverer, { wantsTick: (jobId: string) => (asked.push(jobId), false) });
    const job = await engine.submit(req());
    await engine.waitFor(job.id);
    expect(asked.length).toBeGreaterThan(0);
    expect(asked.every((id) => id === job.id)).toBe(true);
    expect(deliverer.events.filter((e) => !e.changed)).toEqual([]);
    expect(deliverer.events.filter((e) => e.changed).map((e) => e.phase)).toEqual(['queued', 'generating', 'downloading', 'done']);
  });
  it('a job whose platform has no deliverer stays pending delivery', async () => {
    const { engine } = build();
    const job = await engine.submit(req({ requester: { platform: 'slack', userId: 'U1' } }));
    const done = await engine.waitFor(job.id);
    expect(done.state).toBe('succeeded');
    expect(done.deliveredAt).toBeUndefined();
    expect(await store.setMembers(UNFINISHED_JOBS_KEY)).toEqual([job.id]);
  });
  it('a store error after a delivery does not deliver the result twice', async () => {
    const { engine, deliverer } = build();
    onJobWrite(store, async (record, write) => {
      if (record.deliveredAt !== undefined) throw new Error('store unavailable');
      return write();
    });
    const job = await engine.submit(req());
    while (!logLines.some((l) => l.includes('job run failed unexpectedly'))) await new Promise((r) => setTimeout(r, 5));
    expect(deliverer.delivered.map((j) => j.id)).toEqual([job.id]);
    // Not marked delivered in the store: the next start delivers again rather than losing it.
    expect(await store.setMembers(UNFINISHED_JOBS_KEY)).toEqual([job.id]);
  });
});
