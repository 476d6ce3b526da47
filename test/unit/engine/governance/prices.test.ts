/**
 * Learned prices (governance/prices.ts) on both real backends: documented prices first, then
 * what a provider reported, shared through the store with every other process.
 */
import { describe, expect, it, vi } from 'vitest';
import { PriceBook } from '../../../../src/engine/governance/prices.ts';
import { MODEL_CATALOG, type ModelSpec } from '../../../../src/engine/models.ts';
import { useBackends } from './ledger-backends.ts';

const BACKENDS = useBackends('prices');
const model = (key: string): ModelSpec => {
  const found = MODEL_CATALOG.find((m) => m.key === key);
  if (!found) throw new Error(`no model ${key}`);
  return found;
};
const standard = model('runblob-standard');
const pro = model('runblob-pro');

describe('documented prices', () => {
  it("start RunBlob standard at the documented $0.02 per image (docs/providers.md), not $0.04", () => {
    expect(standard.estimatedUsd['1K']).toBe(0.02);
  });
});

describe.each(BACKENDS)('PriceBook on $name', (backend) => {
  it('estimates from the catalog, then from what the provider reported, per model and resolution', async () => {
    const { store } = await backend.open();
    const prices = new PriceBook(store);
    await prices.fresh();
    expect(prices.estimate(standard, '1K')).toBe(0.02);
    expect(prices.estimate(pro, '4K')).toBe(pro.estimatedUsd['4K']);
    expect(await prices.learn(pro, '4K', 0.08)).toBe(true);
    expect(prices.estimate(pro, '4K')).toBe(0.08);
    expect(prices.estimate(pro, '2K')).toBe(pro.estimatedUsd['2K']); // another size keeps its own
  });

  it('ignores a zero report (a failed, refunded Runbase run) and does not rewrite an unchanged price', async () => {
    const { store } = await backend.open();
    const prices = new PriceBook(store);
    const set = vi.spyOn(store.kv, 'set');
    expect(await prices.learn(standard, '1K', 0)).toBe(false);
    expect(await prices.learn(standard, '1K', 0.025)).toBe(true);
    expect(await prices.learn(standard, '1K', 0.025)).toBe(false);
    expect(set).toHaveBeenCalledTimes(1);
    expect(prices.estimate(standard, '1K')).toBe(0.025);
  });

  it('a price learned in one process reaches another on the same store (at start, then within refreshMs)', async () => {
    const { store, prefix } = await backend.open();
    const { store: other } = await backend.open(prefix);
    let clock = 0;
    const here = new PriceBook(store, { refreshMs: 1_000, now: () => clock });
    const there = new PriceBook(other, { refreshMs: 1_000, now: () => clock });
    await there.fresh();
    await here.learn(standard, '1K', 0.03);
    // A process that starts now sees it at once.
    const restarted = new PriceBook(other, { now: () => clock });
    await restarted.fresh();
    expect(restarted.estimate(standard, '1K')).toBe(0.03);
    // A running one keeps its memory until refreshMs has passed, then reads it.
    await there.fresh();
    expect(there.estimate(standard, '1K')).toBe(0.02);
    clock += 1_000;
    await there.fresh();
    expect(there.estimate(standard, '1K')).toBe(0.03);
  });
});
