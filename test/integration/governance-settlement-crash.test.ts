/**
 * A job in a server, killed at every store write of its settlement and resumed: the global and
 * the server spend counters, the learned price and the usage ledger each end where one
 * settlement puts them — nothing lost, nothing counted twice (jobs/settlement.ts).
 */
import { describe, expect, it } from 'vitest';
import { UsageLedger } from '../../src/engine/governance/usage.ts';
import type { JobRecord } from '../../src/engine/job.ts';
import { jobKey } from '../../src/engine/jobs/records.ts';
import { MODEL_CATALOG } from '../../src/engine/models.ts';
import { build, crashAtWrite, FIRST_MADE_SECOND_FAILED, req, store, useEngineFixture, user } from '../unit/engine/engine-fixture.ts';

useEngineFixture();
const pro = MODEL_CATALOG.find((m) => m.key === 'runbase-pro')!;

describe('a server job settled across a crash', () => {
  it.each([1, 2, 3, 4, 5, 6, 7].flatMap((at) => [{ at, when: 'before' as const }, { at, when: 'after' as const }]))(
    'dies at settlement write $at ($when it lands), resumes, and every ledger is exact',
    async ({ at, when }) => {
      const { engine, quotas, client } = build({ spendCapUsd: 10 });
      client.script = FIRST_MADE_SECOND_FAILED;
      const crash = crashAtWrite(store, at, when);
      const job = await engine.submit(req({ count: 2, requester: { ...user, scope: 'g1' } }));
      expect(job.quota).toMatchObject({ spendScope: 'discord:g1', spendReservedUsd: 0.26 });
      await engine.waitFor(job.id);
      crash.disarm();
      await engine.resume();
      await engine.waitFor(job.id);
      const stored = (await store.kv.get<JobRecord>(jobKey(job.id)))!;
      expect(stored.quota).toMatchObject({ reserved: 2, refunded: 1, settled: true });
      expect(await quotas.spentToday()).toBeCloseTo(0.05, 9);
      expect(await quotas.serverSpentToday('discord:g1')).toBeCloseTo(0.05, 9);
      const usage = await new UsageLedger(store).report('discord:g1', 'day', 5);
      expect(usage.total).toEqual({ images: 1, units: 1, usd: 0.05 });
      // The price the provider reported is the next estimate (the $0 of the failed run is not a price).
      expect(quotas.prices.estimate(pro, '1K')).toBe(0.05);
      expect(crash.crashed).toBe(true);
    },
  );
});
