/**
 * The usage ledger (governance/usage.ts) on both real backends: per day and month, by user and
 * model, ranked; one atomic store step per job; other scopes and other days stay apart.
 */
import { describe, expect, it, vi } from 'vitest';
import { UsageLedger } from '../../../../src/engine/governance/usage.ts';
import { nextUtcMidnight } from '../../../../src/engine/quota.ts';
import { useBackends } from './ledger-backends.ts';

const BACKENDS = useBackends('usage');
/** Near the real present, so counter expiries computed from the test clock lie in the real future. */
const NOON = nextUtcMidnight(Date.now()) - 12 * 60 * 60 * 1000;

describe.each(BACKENDS)('UsageLedger on $name', (backend) => {
  it('reports a day and a month: totals, users and models ranked by units', async () => {
    const { store } = await backend.open();
    let clock = NOON;
    const ledger = new UsageLedger(store, { now: () => clock });
    await ledger.record('discord:g1', 'alice', 'runblob-standard', { images: 1, units: 1, usd: 0.02 });
    await ledger.record('discord:g1', 'bob', 'runblob-pro', { images: 2, units: 8, usd: 0.16 });
    await ledger.record('discord:g1', 'alice', 'runblob-pro', { images: 1, units: 4, usd: 0.08 });
    await ledger.record('discord:g2', 'carol', 'runblob-pro', { images: 4, units: 16, usd: 0.32 }); // another server

    const day = await ledger.report('discord:g1', 'day', 10);
    expect(day.label).toBe(new Date(NOON).toISOString().slice(0, 10));
    expect(day.total.images).toBe(4);
    expect(day.total.units).toBe(13);
    expect(day.total.usd).toBeCloseTo(0.26, 10);
    expect(day.byUser.map((r) => [r.key, r.images, r.units])).toEqual([
      ['bob', 2, 8],
      ['alice', 2, 5],
    ]);
    expect(day.byUser[1]?.usd).toBeCloseTo(0.1, 10);
    expect(day.byModel.map((r) => [r.key, r.units])).toEqual([
      ['runblob-pro', 12],
      ['runblob-standard', 1],
    ]);
    // The total counts every member, not only the `top` ranked ones.
    const topOne = await ledger.report('discord:g1', 'day', 1);
    expect(topOne.byUser.map((r) => r.key)).toEqual(['bob']);
    expect(topOne.total).toEqual(day.total);

    // The next day starts empty; the month still holds both days.
    clock = NOON + 24 * 60 * 60 * 1000;
    await ledger.record('discord:g1', 'alice', 'runblob-standard', { images: 1, units: 1, usd: 0.02 });
    const nextDay = await ledger.report('discord:g1', 'day', 10);
    expect(nextDay.total).toEqual({ images: 1, units: 1, usd: 0.02 });
    expect(nextDay.byUser.map((r) => r.key)).toEqual(['alice']);
    const month = await ledger.report('discord:g1', 'month', 10);
    expect(month.label).toBe(new Date(clock).toISOString().slice(0, 7));
    if (new Date(clock).getUTCMonth() === new Date(NOON).getUTCMonth()) expect(month.total.units).toBe(14);
  });

  it('records nothing outside a server, and an empty report is zeros', async () => {
    const { store } = await backend.open();
    const ledger = new UsageLedger(store, { now: () => NOON });
    await ledger.record(undefined, 'alice', 'runblob-standard', { images: 1, units: 1, usd: 0.02 });
    expect(await ledger.report('slack:T1', 'month', 5)).toEqual({
      period: 'month',
      label: new Date(NOON).toISOString().slice(0, 7),
      total: { images: 0, units: 0, usd: 0 },
      byUser: [],
      byModel: [],
    });
  });

  it('writes a job in one atomic store step and stays exact under concurrent jobs from two processes', async () => {
    const { store, prefix } = await backend.open();
    const { store: other } = await backend.open(prefix);
    const addMany = vi.spyOn(store, 'addMany');
    const a = new UsageLedger(store, { now: () => NOON });
    const b = new UsageLedger(other, { now: () => NOON });
    await Promise.all(
      Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).record('slack:T1', `U${i % 4}`, i % 3 ? 'runbase-2' : 'runbase-pro', { images: 1, units: 2, usd: 0.045 })),
    );
    expect(addMany).toHaveBeenCalledTimes(20); // one store call per job
    const report = await a.report('slack:T1', 'day', 10);
    expect(report.total.images).toBe(40);
    expect(report.total.units).toBe(80);
    expect(report.total.usd).toBeCloseTo(1.8, 10);
    expect(report.byUser.map((r) => [r.key, r.images])).toEqual([
      ['U0', 10],
      ['U1', 10],
      ['U2', 10],
      ['U3', 10],
    ]);
    expect(report.byModel.reduce((sum, r) => sum + r.images, 0)).toBe(40);
  });

  it('with a once-id, records a job once even when two processes settle it at the same time', async () => {
    const { store, prefix } = await backend.open();
    const { store: other } = await backend.open(prefix);
    const ledgers = [new UsageLedger(store, { now: () => NOON }), new UsageLedger(other, { now: () => NOON })];
    const applied = await Promise.all(
      Array.from({ length: 6 }, (_, i) => ledgers[i % 2]!.record('discord:g1', 'alice', 'runblob-2', { images: 2, units: 4, usd: 0.09 }, { onceId: 'job:j1' })),
    );
    expect(applied.filter(Boolean)).toHaveLength(1);
    expect(await ledgers[0]!.record('discord:g1', 'alice', 'runblob-2', { images: 1, units: 2, usd: 0.045 }, { onceId: 'job:j2' })).toBe(true);
    const report = await ledgers[1]!.report('discord:g1', 'day', 5);
    expect(report.total.images).toBe(3);
    expect(report.byUser).toEqual([{ key: 'alice', images: 3, units: 6, usd: expect.closeTo(0.135, 10) as number }]);
  });

  it("rests on Store.addMany / readMany / expiringMembers, which honour expiry and apply a guarded change once", async () => {
    const { store } = await backend.open();
    const later = Date.now() + 60_000;
    const past = Date.now() - 1;
    expect(await store.addMany([{ key: 'c1', delta: 3, expiresAt: later }, { key: 'c2', delta: -2, expiresAt: later }], [{ key: 's', member: 'x', expiresAt: later }])).toBe(true);
    expect(await store.addMany([{ key: 'c1', delta: 4, expiresAt: later }, { key: 'gone', delta: 9, expiresAt: past }], [{ key: 's', member: 'y', expiresAt: later }, { key: 's-old', member: 'z', expiresAt: past }])).toBe(true);
    expect(await store.readMany(['c1', 'c2', 'gone', 'missing'])).toEqual([7, -2, 0, 0]);
    expect(await store.expiringMembers('s')).toEqual(['x', 'y']);
    expect(await store.expiringMembers('s-old')).toEqual([]);
    const guard = { key: 'once:1', ttlMs: 60_000 };
    expect(await store.addMany([{ key: 'c1', delta: 1, expiresAt: later }], [], guard)).toBe(true);
    expect(await store.addMany([{ key: 'c1', delta: 1, expiresAt: later }], [], guard)).toBe(false);
    expect(await store.readMany(['c1'])).toEqual([8]);
    expect(await store.setIfAbsent('once:1', '1', 60_000)).toBe(false); // the guard lives in setIfAbsent's key space
  });

  it('refuses amounts that are not counts', async () => {
    const { store } = await backend.open();
    const ledger = new UsageLedger(store, { now: () => NOON });
    await expect(ledger.record('discord:g1', 'a', 'm', { images: -1, units: 0, usd: 0 })).rejects.toThrow(RangeError);
    await expect(ledger.record('discord:g1', 'a', 'm', { images: 1, units: 1.5, usd: 0 })).rejects.toThrow(RangeError);
  });
});
