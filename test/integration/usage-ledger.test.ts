/**
 * Usage recorded by the settlement (jobs/settlement.ts → governance/usage.ts) through the real
 * engine against the fake RunBlob: images delivered, units charged and USD reported, per server,
 * user and model; nothing for a job that made nothing, and nothing outside a server.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { UsageLedger } from '../../src/engine/governance/usage.ts';
import type { Run } from '../../src/engine/jobs/context.ts';
import type { JobRecords } from '../../src/engine/jobs/records.ts';
import { settle } from '../../src/engine/jobs/settlement.ts';
import { MODEL_CATALOG } from '../../src/engine/models.ts';
import { startFakeRunblob } from '../fakes/runblob.ts';
import { discordUser, startEngineHarness } from './engine-harness.ts';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

describe('usage through the engine', () => {
  it('records each settled job once: delivered images, charged units, reported USD', async () => {
    const fake = await startFakeRunblob({ durationMs: 60 });
    cleanups.push(() => fake.close());
    const h = await startEngineHarness({ RUNBLOB_API_KEY: fake.apiKey, RUNBLOB_API_URL: fake.url });
    cleanups.push(() => h.close());
    const job = (userId: string, scope: string | undefined, over: Record<string, unknown>) =>
      h.engine.submit({
        prompt: 'a paper boat',
        model: 'runblob-standard',
        ratio: '1:1',
        resolution: '1K',
        count: 1,
        requester: { ...discordUser(userId), ...(scope ? { scope } : {}) },
        ...over,
      });
    const jobs = await Promise.all([
      job('alice', 'g1', { count: 2 }),
      job('bob', 'g1', { model: 'runblob-pro', resolution: '4K' }),
      job('bob', 'g1', { prompt: 'a paper boat [fail:MODERATION_FAILED]' }),
      job('carol', undefined, {}), // a DM: no server to report to
    ]);
    for (const j of jobs) await h.engine.waitFor(j.id);

    const report = await new UsageLedger(h.store).report('discord:g1', 'day', 10);
    expect(report.total.images).toBe(3);
    expect(report.total.units).toBe(6); // 2 × 1K + one 4K; the failed job was refunded
    // The fake's prices: standard $0.02, pro 4K $0.08; the refused task reported its price too.
    expect(report.total.usd).toBeCloseTo(0.04 + 0.08 + 0.02, 10);
    expect(report.byUser.map((r) => [r.key, r.images, r.units])).toEqual([
      ['bob', 1, 4],
      ['alice', 2, 2],
    ]);
    expect(report.byModel.map((r) => [r.key, r.images])).toEqual([
      ['runblob-pro', 1],
      ['runblob-standard', 2],
    ]);
    expect((await new UsageLedger(h.store).report('discord:g1', 'month', 10)).total.images).toBe(3);

    // A settlement resumed after a crash (the same terminal job, `settled` not yet stored) records nothing twice.
    const done = structuredClone(await h.engine.waitFor(jobs[0]!.id));
    done.quota.settled = false;
    const run = { job: done, model: MODEL_CATALOG.find((m) => m.key === 'runblob-standard'), log: h.log } as unknown as Run;
    await settle(run, h.quotas, { persist: async () => undefined } as unknown as JobRecords, undefined, new UsageLedger(h.store));
    expect((await new UsageLedger(h.store).report('discord:g1', 'day', 10)).total).toEqual(report.total);
  });
});
