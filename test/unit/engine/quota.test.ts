/**
 * Quotas over a real (in-memory SQLite) store with an injected clock. Instants are taken near the
 * real present so that counter expiries computed from the injected clock lie in the real future.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/log.ts';
import { openStore } from '../../../src/engine/open-store.ts';
import { DAY_MS, Quotas, nextUtcMidnight, utcDay, type QuotaOptions } from '../../../src/engine/quota.ts';
import { QuotaExceededError, SpendCapError } from '../../../src/engine/errors.ts';
import type { Requester } from '../../../src/engine/request.ts';
import type { Store } from '../../../src/engine/store.ts';

const log = createLogger({ level: 'silent' });
const DEFAULT_COSTS = { '1K': 1, '2K': 2, '4K': 4 } as const;
const alice: Requester = { platform: 'discord', userId: '111' };
const aliceOnSlack: Requester = { platform: 'slack', userId: '111' };
const bob: Requester = { platform: 'slack', userId: 'U0BOB' };

/** The next real UTC midnight: a day boundary the test clock can step across. */
const MIDNIGHT = nextUtcMidnight(Date.now());

let store: Store;
let clockMs: number;
const quotas = (opts: Partial<QuotaOptions> = {}) =>
  new Quotas(store, { dailyUnits: 20, costs: { ...DEFAULT_COSTS }, exemptUsers: [], now: () => clockMs, ...opts });

beforeEach(async () => {
  store = await openStore('sqlite://:memory:', { log });
  clockMs = MIDNIGHT - 60 * 60 * 1000; // 23:00 UTC
});
afterEach(async () => {
  await store.close();
});

describe('unitsFor', () => {
  it('charges by resolution with the default costs', () => {
    const q = quotas();
    expect(q.unitsFor('1K', 1)).toBe(1);
    expect(q.unitsFor('2K', 3)).toBe(6);
    expect(q.unitsFor('4K', 4)).toBe(16);
  });

  it('charges configured costs, and reserve takes exactly that many units', async () => {
    const q = quotas({ costs: { '1K': 2, '2K': 5, '4K': 9 }, dailyUnits: 30 });
    expect(q.unitsFor('1K', 1)).toBe(2);
    expect(q.unitsFor('2K', 2)).toBe(10);
    expect(q.unitsFor('4K', 3)).toBe(27);
    await q.reserve(alice, q.unitsFor('4K', 3));
    const view = await q.view(alice);
    expect(view).toMatchObject({ used: 27, left: 3, limit: 30, costs: { '1K': 2, '2K': 5, '4K': 9 } });
    await expect(q.reserve(alice, q.unitsFor('1K', 2))).rejects.toThrow(QuotaExceededError);
  });
});

describe('reserve', () => {
  it('takes units until the allowance is spent, then refuses with what is needed and left', async () => {
    const q = quotas({ dailyUnits: 10 });
    expect(await q.reserve(alice, 4)).toEqual({ day: utcDay(clockMs), reserved: 4 });
    await q.reserve(alice, 4);
    const err = await q.reserve(alice, 4).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QuotaExceededError);
    expect(err).toMatchObject({ needed: 4, left: 2, resetsAt: MIDNIGHT, code: 'QUOTA_EXCEEDED' });
    expect((err as QuotaExceededError).userMessage).toContain('2 units left');
    // A refused reservation takes nothing: the 2 left still fit.
    expect((await q.view(alice)).used).toBe(8);
    await q.reserve(alice, 2);
    expect((await q.view(alice)).left).toBe(0);
  });

  it('counts each platform user separately', async () => {
    const q = quotas({ dailyUnits: 5 });
    await q.reserve(alice, 5);
    await expect(q.reserve(alice, 1)).rejects.toThrow(QuotaExceededError);
    await q.reserve(aliceOnSlack, 5);
    await q.reserve(bob, 5);
    expect(q.userKey(alice)).toBe('discord:111');
    expect(q.userKey(bob)).toBe('slack:U0BOB');
  });

  it('lets nobody but exempt users generate when the allowance is 0', async () => {
    const q = quotas({ dailyUnits: 0, exemptUsers: ['U0BOB'] });
    await expect(q.reserve(alice, 1)).rejects.toMatchObject({ needed: 1, left: 0 });
    expect(await q.reserve(bob, 8)).toMatchObject({ reserved: 0 });
  });
});

describe('exempt users', () => {
  it('exempts a bare id on every platform', async () => {
    const q = quotas({ dailyUnits: 2, exemptUsers: ['111'] });
    expect(q.isExempt(alice)).toBe(true);
    expect(q.isExempt(aliceOnSlack)).toBe(true);
    expect(q.isExempt(bob)).toBe(false);
    for (let i = 0; i < 5; i++) expect(await q.reserve(alice, 4)).toMatchObject({ reserved: 0 });
    expect(await q.view(alice)).toMatchObject({ exempt: true, used: 0, left: 2 });
    await expect(q.reserve(bob, 3)).rejects.toThrow(QuotaExceededError);
  });

  it('exempts a platform:id only on that platform', async () => {
    const q = quotas({ dailyUnits: 2, exemptUsers: [' discord:111 '] });
    expect(await q.reserve(alice, 10)).toMatchObject({ reserved: 0 });
    await expect(q.reserve(aliceOnSlack, 10)).rejects.toThrow(QuotaExceededError);
    expect((await q.view(aliceOnSlack)).exempt).toBe(false);
  });
});

describe('view and the UTC day boundary', () => {
  it('shows used, left and the next UTC midnight, and starts afresh after it', async () => {
    const q = quotas({ dailyUnits: 20 });
    await q.reserve(alice, 3);
    clockMs = MIDNIGHT - 1000; // 23:59:59
    expect(await q.view(alice)).toEqual({
      exempt: false,
      limit: 20,
      used: 3,
      left: 17,
      resetsAt: MIDNIGHT,
      costs: { '1K': 1, '2K': 2, '4K': 4 },
    });
    clockMs = MIDNIGHT; // 00:00:00 the next day
    expect(await q.view(alice)).toMatchObject({ used: 0, left: 20, resetsAt: MIDNIGHT + DAY_MS });
    expect(await q.reserve(alice, 20)).toEqual({ day: utcDay(MIDNIGHT), reserved: 20 });
    const err = await q.reserve(alice, 1).catch((e: unknown) => e);
    expect(err).toMatchObject({ left: 0, resetsAt: MIDNIGHT + DAY_MS });
  });

  it('reports resetsAt as the next midnight even one millisecond after midnight', async () => {
    clockMs = MIDNIGHT + 1;
    expect((await quotas().view(alice)).resetsAt).toBe(MIDNIGHT + DAY_MS);
    expect(new Date(MIDNIGHT).toISOString()).toMatch(/T00:00:00\.000Z$/);
  });
});

describe('refund', () => {
  it('gives units back to the day they were taken from', async () => {
    const q = quotas({ dailyUnits: 10 });
    const { day } = await q.reserve(alice, 8);
    await q.refund(alice, day, 3);
    expect(await q.view(alice)).toMatchObject({ used: 5, left: 5 });
    await q.reserve(alice, 5);
    await expect(q.reserve(alice, 1)).rejects.toThrow(QuotaExceededError);
  });

  it('accepts a user key instead of a requester', async () => {
    const q = quotas({ dailyUnits: 10 });
    const { day } = await q.reserve(bob, 6);
    await q.refund('slack:U0BOB', day, 6);
    expect((await q.view(bob)).used).toBe(0);
  });

  it('never makes the counter negative, so a double refund grants nothing extra', async () => {
    const q = quotas({ dailyUnits: 10 });
    const { day } = await q.reserve(alice, 4);
    await q.refund(alice, day, 4);
    await q.refund(alice, day, 4);
    expect(await q.view(alice)).toMatchObject({ used: 0, left: 10 });
    await q.reserve(alice, 10);
    await expect(q.reserve(alice, 1)).rejects.toThrow(QuotaExceededError);
  });

  it('ignores a refund for a day that is over', async () => {
    const q = quotas({ dailyUnits: 10 });
    const { day } = await q.reserve(alice, 6);
    clockMs = MIDNIGHT + 5000;
    await q.refund(alice, day, 6);
    await q.reserve(alice, 10); // today's allowance is whole and untouched
    clockMs = MIDNIGHT - 5000; // looking back at yesterday: still 6 used
    expect((await q.view(alice)).used).toBe(6);
  });
});

describe('once-only settlement', () => {
  it('refunds once per settlement id, however often the settlement runs', async () => {
    const q = quotas({ dailyUnits: 10 });
    const { day } = await q.reserve(alice, 4);
    await q.reserve(alice, 3); // another job of the same user
    expect(await q.refundOnce('job:a', alice, day, 4)).toBe(true);
    expect(await q.refundOnce('job:a', alice, day, 4)).toBe(false);
    expect(await q.refundOnce('job:a', 'discord:111', day, 4)).toBe(false);
    expect(await q.view(alice)).toMatchObject({ used: 3, left: 7 });
    // Another settlement is its own.
    expect(await q.refundOnce('job:b', alice, day, 3)).toBe(true);
    expect((await q.view(alice)).used).toBe(0);
    // Never below 0.
    expect(await q.refundOnce('job:c', alice, day, 5)).toBe(true);
    expect((await q.view(alice)).used).toBe(0);
  });

  it('refunds nothing for 0 units or for a day that is over, and rejects bad units', async () => {
    const q = quotas({ dailyUnits: 10 });
    const { day } = await q.reserve(alice, 6);
    expect(await q.refundOnce('job:zero', alice, day, 0)).toBe(false);
    await expect(q.refundOnce('job:bad', alice, day, 1.5)).rejects.toThrow(RangeError);
    clockMs = MIDNIGHT + 5000;
    expect(await q.refundOnce('job:late', alice, day, 6)).toBe(false);
    clockMs = MIDNIGHT - 5000;
    expect((await q.view(alice)).used).toBe(6);
  });

  it('adjusts spend once per settlement id, a release stopping at 0', async () => {
    const q = quotas({ spendCapUsd: 1 });
    const { day } = await q.reserveSpend(0.5);
    expect(await q.adjustSpendOnce('job:a', day, 0.134)).toBe(true);
    expect(await q.adjustSpendOnce('job:a', day, 0.134)).toBe(false);
    expect(await q.spentToday()).toBeCloseTo(0.634, 9);
    expect(await q.adjustSpendOnce('job:b', day, -5)).toBe(true);
    expect(await q.spentToday()).toBe(0);
    expect(await q.adjustSpendOnce('job:c', day, 0)).toBe(false);
    // The units guard and the spend guard of one id are independent.
    const units = await q.reserve(alice, 2);
    expect(await q.refundOnce('job:a', alice, units.day, 2)).toBe(true);
  });
});

describe('spend cap', () => {
  it('reserves estimates up to the cap, then refuses until the next UTC midnight', async () => {
    const q = quotas({ spendCapUsd: 1 });
    expect(await q.reserveSpend(0.4)).toEqual({ day: utcDay(clockMs), reservedUsd: 0.4 });
    await q.reserveSpend(0.4);
    const err = await q.reserveSpend(0.4).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpendCapError);
    expect(err).toMatchObject({ code: 'SPEND_CAP_REACHED', resetsAt: MIDNIGHT });
    expect(await q.spentToday()).toBeCloseTo(0.8, 9);
    clockMs = MIDNIGHT + 1;
    expect(await q.spentToday()).toBe(0);
    await q.reserveSpend(0.9);
  });

  it('counts in exact micro-dollars: ten 0.1 reservations fit a 1.0 cap, the eleventh does not', async () => {
    const q = quotas({ spendCapUsd: 1 });
    for (let i = 0; i < 10; i++) await q.reserveSpend(0.1);
    await expect(q.reserveSpend(0.000001)).rejects.toThrow(SpendCapError);
    expect(await q.spentToday()).toBe(1);
  });

  it('adjusts an estimate to the reported cost, or releases it on failure', async () => {
    const q = quotas({ spendCapUsd: 1 });
    const first = await q.reserveSpend(0.5);
    const second = await q.reserveSpend(0.5);
    await q.adjustSpend(first.day, -0.5); // job failed: release it
    expect(await q.spentToday()).toBeCloseTo(0.5, 9);
    await q.adjustSpend(second.day, 0.134); // provider reported $0.634
    expect(await q.spentToday()).toBeCloseTo(0.634, 9);
    await q.reserveSpend(0.366);
    await expect(q.reserveSpend(0.01)).rejects.toThrow(SpendCapError);
    // Releasing more than was counted never leaves a negative balance that would exceed the cap later.
    await q.adjustSpend(first.day, -5);
    expect(await q.spentToday()).toBe(0);
    await q.reserveSpend(1);
    await expect(q.reserveSpend(0.01)).rejects.toThrow(SpendCapError);
  });

  it('only counts when the cap is off', async () => {
    const q = quotas({ spendCapUsd: undefined });
    for (let i = 0; i < 5; i++) await q.reserveSpend(100);
    expect(await q.spentToday()).toBe(500);
  });
});
