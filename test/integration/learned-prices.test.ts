/**
 * Issue 10's money acceptance, through the real engine, store and RunBlob client against the fake
 * RunBlob: the spend reservation uses the documented price first and then what the provider
 * reported, so a cap admits as many images as it pays for (at most one image's worth idle), and
 * a price learned by one process is the next estimate of another on the same store.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { SpendCapError } from '../../src/engine/errors.ts';
import { startFakeRunblob } from '../fakes/runblob.ts';
import { discordUser, startEngineHarness, tempDir, type EngineHarness } from './engine-harness.ts';
import { MODEL_CATALOG } from '../../src/engine/models.ts';
import { deleteRedisKeys, REDIS_URL } from '../support/index.ts';

const RUN_PREFIX = `test-learned-prices-${Date.now()}-${Math.random().toString(36).slice(2)}:`;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});
afterAll(() => deleteRedisKeys(RUN_PREFIX));

const standard = MODEL_CATALOG.find((m) => m.key === 'runblob-standard')!;
const request = (userId: string) => ({
  prompt: 'a lighthouse at dusk',
  model: 'runblob-standard',
  ratio: '1:1' as const,
  resolution: '1K' as const,
  count: 1,
  requester: { ...discordUser(userId), scope: 'g1' },
});

async function harness(fakeOpts: Parameters<typeof startFakeRunblob>[0], env: Record<string, string>, opts: Parameters<typeof startEngineHarness>[1] = {}) {
  const fake = await startFakeRunblob({ durationMs: 60, ...fakeOpts });
  cleanups.push(() => fake.close());
  const h = await startEngineHarness({ RUNBLOB_API_KEY: fake.apiKey, RUNBLOB_API_URL: fake.url, ...env }, opts);
  cleanups.push(() => h.close());
  return { fake, h };
}

const settled = (h: EngineHarness, ids: string[]) => Promise.all(ids.map((id) => h.engine.waitFor(id)));

describe('learned prices and the spend cap', () => {
  it.each([
    { store: 'sqlite', storeUrl: undefined },
    { store: 'redis', storeUrl: REDIS_URL },
  ])('under a 0.10 USD cap, 20 simultaneous one-image RunBlob standard requests admit 5 (the documented 0.02 USD each), not 2 ($store)', async ({ storeUrl }) => {
    const keyPrefix = `${RUN_PREFIX}${Math.random().toString(36).slice(2)}:`;
    const { fake, h } = await harness({}, { SPEND_CAP_DAILY_USD: '0.10' }, { keyPrefix, ...(storeUrl ? { storeUrl } : {}) });
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => h.engine.submit(request(`u${i}`))));
    const admitted = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const refused = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    expect(admitted).toHaveLength(5);
    expect(refused).toHaveLength(15);
    for (const err of refused) expect(err).toBeInstanceOf(SpendCapError);
    expect(admitted.every((j) => j.quota.spendReservedUsd === 0.02)).toBe(true);
    const done = await settled(h, admitted.map((j) => j.id));
    expect(done.every((j) => j.state === 'succeeded')).toBe(true);
    expect(fake.tasks.size).toBe(5);
    // The provider charged $0.02 each: the day's spend is the whole cap, nothing idle.
    expect(await h.quotas.spentToday()).toBeCloseTo(0.1, 10);
    // Every job was counted on its server's own counter too, and corrected to the same.
    expect(await h.quotas.serverSpentToday('discord:g1')).toBeCloseTo(0.1, 10);
  });

  it('after the provider reports another price, the next estimate uses it, in this process and in another on the same store', async () => {
    const dir = await tempDir('prices-');
    const keyPrefix = `prices-${Date.now()}-${Math.random().toString(36).slice(2)}:`;
    const { h } = await harness({ priceUsd: () => 0.035 }, { SPEND_CAP_DAILY_USD: '5' }, { dir, keyPrefix });
    const first = await h.engine.submit(request('a'));
    expect(first.quota.spendReservedUsd).toBe(0.02); // nothing reported yet: the documented price
    expect((await h.engine.waitFor(first.id)).tasks[0]?.costUsd).toBe(0.035);
    expect(h.quotas.prices.estimate(standard, '1K')).toBe(0.035);
    const second = await h.engine.submit(request('b'));
    expect(second.quota.spendReservedUsd).toBe(0.035);
    await h.engine.waitFor(second.id);

    // Another process on the same SQLite file and prefix: its first reservation already uses it.
    const { h: other } = await harness({ priceUsd: () => 0.035 }, { SPEND_CAP_DAILY_USD: '5' }, { dir, keyPrefix });
    expect(other.quotas.prices.estimate(standard, '1K')).toBe(0.02); // not read yet
    const third = await other.engine.submit(request('c'));
    expect(third.quota.spendReservedUsd).toBe(0.035);
    await other.engine.waitFor(third.id);
    expect(await other.quotas.spentToday()).toBeCloseTo(0.105, 10);
  });
});
