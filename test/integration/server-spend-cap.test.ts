/**
 * The per-server daily USD cap (ServerSettings.spendCapUsd) with the global one, on both real
 * backends and through the real engine: neither cap is overshot under concurrency from two
 * processes, a refusal reserves nothing, a failed job gives both reservations back, and a
 * resumed settlement does not correct either counter twice.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ServerSpendCapError, SpendCapError } from '../../src/engine/errors.ts';
import type { Run } from '../../src/engine/jobs/context.ts';
import type { JobRecords } from '../../src/engine/jobs/records.ts';
import { settle } from '../../src/engine/jobs/settlement.ts';
import { MODEL_CATALOG } from '../../src/engine/models.ts';
import { Quotas } from '../../src/engine/quota.ts';
import type { Store } from '../../src/engine/store.ts';
import { captureLogger, discordUser, startEngineHarness } from './engine-harness.ts';
import { startFakeRunblob } from '../fakes/runblob.ts';
import { useBackends } from '../unit/engine/governance/ledger-backends.ts';

const BACKENDS = useBackends('server-spend');
const quotasOn = (store: Store, spendCapUsd?: number) => new Quotas(store, { dailyUnits: 20, costs: { '1K': 1, '2K': 2, '4K': 4 }, exemptUsers: [], spendCapUsd });

async function reserveMany(qs: Quotas[], n: number, usd: number, server: { scope: `discord:${string}`; capUsd: number | undefined }) {
  const results = await Promise.allSettled(Array.from({ length: n }, (_, i) => qs[i % qs.length]!.reserveSpend(usd, server)));
  return {
    admitted: results.filter((r) => r.status === 'fulfilled').length,
    errors: results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : [])),
  };
}

describe.each(BACKENDS)('per-server spend cap on $name', (backend) => {
  it('two servers with their own caps under the global one: exact under concurrency from two processes', async () => {
    const { store, prefix } = await backend.open();
    const { store: other } = await backend.open(prefix);
    const qs = [quotasOn(store, 1), quotasOn(other, 1)];
    const [g1, g2] = await Promise.all([
      reserveMany(qs, 30, 0.02, { scope: 'discord:g1', capUsd: 0.1 }),
      reserveMany(qs, 30, 0.02, { scope: 'discord:g2', capUsd: 0.06 }),
    ]);
    expect(g1.admitted).toBe(5);
    expect(g2.admitted).toBe(3);
    for (const err of [...g1.errors, ...g2.errors]) expect(err).toBeInstanceOf(ServerSpendCapError);
    expect(await qs[0]!.serverSpentToday('discord:g1')).toBeCloseTo(0.1, 10);
    expect(await qs[1]!.serverSpentToday('discord:g2')).toBeCloseTo(0.06, 10);
    expect(await qs[0]!.spentToday()).toBeCloseTo(0.16, 10); // refusals took nothing from the global cap
  });

  it('when the global cap refuses, the server part is given back', async () => {
    const { store, prefix } = await backend.open();
    const { store: other } = await backend.open(prefix);
    const qs = [quotasOn(store, 0.05), quotasOn(other, 0.05)];
    const { admitted, errors } = await reserveMany(qs, 10, 0.02, { scope: 'discord:g1', capUsd: 1 });
    expect(admitted).toBe(2);
    for (const err of errors) expect(err).toBeInstanceOf(SpendCapError);
    expect(await qs[0]!.serverSpentToday('discord:g1')).toBeCloseTo(0.04, 10);
    expect(await qs[0]!.spentToday()).toBeCloseTo(0.04, 10);
  });

  it('a server without a cap is still counted; a correction of its counter lands once per settlement', async () => {
    const { store } = await backend.open();
    const q = quotasOn(store);
    const r = await q.reserveSpend(0.13, { scope: 'discord:g1', capUsd: undefined });
    expect(r).toMatchObject({ reservedUsd: 0.13, scope: 'discord:g1' });
    expect(await q.adjustServerSpendOnce('job:x', 'discord:g1', r.day, -0.09)).toBe(true);
    expect(await q.adjustServerSpendOnce('job:x', 'discord:g1', r.day, -0.09)).toBe(false);
    expect(await q.serverSpentToday('discord:g1')).toBeCloseTo(0.04, 10);
    // The global counter has its own guard: the same settlement corrects it once too.
    expect(await q.adjustSpendOnce('job:x', r.day, -0.09)).toBe(true);
    expect(await q.spentToday()).toBeCloseTo(0.04, 10);
  });
});

describe('per-server spend through the engine (fake RunBlob)', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });
  const request = (balanceNote = '') => ({
    prompt: `a red kite ${balanceNote}`.trim(),
    model: 'runblob-standard',
    ratio: '1:1' as const,
    resolution: '1K' as const,
    count: 2,
    requester: { ...discordUser('m1'), scope: 'g1' },
  });
  async function harness(fakeOpts: Parameters<typeof startFakeRunblob>[0]) {
    const fake = await startFakeRunblob({ durationMs: 60, ...fakeOpts });
    cleanups.push(() => fake.close());
    const h = await startEngineHarness({ RUNBLOB_API_KEY: fake.apiKey, RUNBLOB_API_URL: fake.url, SPEND_CAP_DAILY_USD: '1' });
    cleanups.push(() => h.close());
    return h;
  }

  it('a job whose creates were refused (402) gives back both the global and the server reservation', async () => {
    const h = await harness({ balanceUsd: 0 });
    const job = await h.engine.submit(request());
    expect(job.quota).toMatchObject({ spendReservedUsd: 0.04, spendScope: 'discord:g1' });
    expect(await h.quotas.serverSpentToday('discord:g1')).toBeCloseTo(0.04, 10);
    expect((await h.engine.waitFor(job.id)).state).toBe('failed');
    expect(await h.quotas.serverSpentToday('discord:g1')).toBe(0);
    expect(await h.quotas.spentToday()).toBe(0);
  });

  it('a resumed settlement of a settled job changes neither counter again', async () => {
    const h = await harness({ priceUsd: () => 0.015 });
    const job = await h.engine.submit(request());
    const done = await h.engine.waitFor(job.id);
    expect(done.state).toBe('succeeded');
    expect(await h.quotas.serverSpentToday('discord:g1')).toBeCloseTo(0.03, 10);
    expect(await h.quotas.spentToday()).toBeCloseTo(0.03, 10);
    // The same persisted, terminal job settled again, as after a crash before `settled` was stored.
    const again = structuredClone(done);
    again.quota.settled = false;
    const run = { job: again, model: MODEL_CATALOG.find((m) => m.key === 'runblob-standard'), log: captureLogger().log } as unknown as Run;
    await settle(run, h.quotas, { persist: async () => undefined } as unknown as JobRecords);
    expect(await h.quotas.serverSpentToday('discord:g1')).toBeCloseTo(0.03, 10);
    expect(await h.quotas.spentToday()).toBeCloseTo(0.03, 10);
  });
});
