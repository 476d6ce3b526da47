/**
 * The usage ledger: what each server's members used, per UTC day and month, by user and by
 * model (images delivered, units charged, USD the providers reported), for the admin's usage
 * view (issue 10, "Seeing"). Written once per job, by the settlement (jobs/settlement.ts).
 *
 * Layout: one integer counter per (scope, period, dimension, key, metric), USD in micro-dollars
 * like the spend counters (quota.ts), plus an expiring set per (scope, period, dimension) naming
 * the users and models seen, so report() can rank them. The total is the sum of the users' rows
 * (report() reads them all anyway), not counters of its own: six fewer upserts per job. A job's
 * record is ONE atomic store step (Store.addMany: 12 counters and 4 set members in one savepoint /
 * MULTI), so a report never shows half a job, and a job costs one write round trip (issue 13 wants
 * few writes per job).
 */
import { DAY_MS, utcDay, utcDayStart } from '../quota.ts';
import type { CounterChange, ExpiringMember, Store } from '../store.ts';
import type { ScopeKey, UsagePeriod, UsageReport, UsageRow } from './api.ts';

const MICRO_USD_PER_USD = 1_000_000;
/** Day counters are kept this long after their day starts (a month of daily history). */
const DAY_RETENTION_MS = 35 * DAY_MS;
/** Month counters are kept this long after their month starts (a year of monthly history). */
const MONTH_RETENTION_MS = 400 * DAY_MS;

/** A once-only guard outlives any resume of the job it protects (jobs live far less than this). */
const ONCE_GUARD_TTL_MS = DAY_RETENTION_MS;

const METRICS = ['images', 'units', 'usd'] as const;
type Metric = (typeof METRICS)[number];
/** `u` by user, `m` by model. */
type Dimension = 'u' | 'm';

export interface UsageUsed {
  /** Images delivered. */
  images: number;
  /** Units charged (reserved minus refunded). */
  units: number;
  /** What the providers reported the job cost, in USD. */
  usd: number;
}

/** The label of `period` at `ms`: YYYY-MM-DD or YYYY-MM (UTC). */
export function periodLabel(period: UsagePeriod, ms: number): string {
  const day = utcDay(ms);
  return period === 'day' ? day : day.slice(0, 7);
}

function periodExpiry(period: UsagePeriod, label: string): number {
  return period === 'day' ? utcDayStart(label) + DAY_RETENTION_MS : utcDayStart(`${label}-01`) + MONTH_RETENTION_MS;
}

const counterKey = (scope: ScopeKey, period: UsagePeriod, label: string, dim: Dimension, key: string, metric: Metric) =>
  `usage:${scope}:${period}:${label}:${dim}:${key}:${metric}`;
const indexKey = (scope: ScopeKey, period: UsagePeriod, label: string, dim: Dimension) => `usage-index:${scope}:${period}:${label}:${dim}`;

function assertCount(name: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${name} must be a non-negative integer, got ${n}`);
}

export class UsageLedger {
  readonly #store: Store;
  readonly #now: () => number;

  constructor(store: Store, opts: { now?: () => number } = {}) {
    this.#store = store;
    this.#now = opts.now ?? Date.now;
  }

  /**
   * Adds one job's usage to today's and this month's counters of `scope`. Outside a server (a
   * DM without one, the CLI) there is no admin to show it to, so nothing is recorded. With
   * `onceId` (a job's settlement), a repeat with the same id changes nothing (Store.addMany's
   * guard, in the same atomic step): a settlement resumed after a crash does not count twice.
   * True when recorded.
   */
  async record(scope: ScopeKey | undefined, userId: string, modelKey: string, used: UsageUsed, opts: { onceId?: string } = {}): Promise<boolean> {
    if (scope === undefined) return false;
    assertCount('images', used.images);
    assertCount('units', used.units);
    if (!Number.isFinite(used.usd) || used.usd < 0) throw new RangeError(`usd must be a non-negative amount, got ${used.usd}`);
    const values: Record<Metric, number> = { images: used.images, units: used.units, usd: Math.round(used.usd * MICRO_USD_PER_USD) };
    const now = this.#now();
    const counters: CounterChange[] = [];
    const members: ExpiringMember[] = [];
    for (const period of ['day', 'month'] as const) {
      const label = periodLabel(period, now);
      const expiresAt = periodExpiry(period, label);
      const rows: Array<[Dimension, string]> = [
        ['u', userId],
        ['m', modelKey],
      ];
      for (const [dim, key] of rows)
        for (const metric of METRICS) counters.push({ key: counterKey(scope, period, label, dim, key, metric), delta: values[metric], expiresAt });
      members.push({ key: indexKey(scope, period, label, 'u'), member: userId, expiresAt });
      members.push({ key: indexKey(scope, period, label, 'm'), member: modelKey, expiresAt });
    }
    const guard = opts.onceId === undefined ? undefined : { key: `usage-once:${opts.onceId}`, ttlMs: ONCE_GUARD_TTL_MS };
    return this.#store.addMany(counters, members, guard);
  }

  /** This UTC day's or month's usage in `scope`: the total, and the `top` users and models by units (then images). */
  async report(scope: ScopeKey, period: UsagePeriod, top: number): Promise<UsageReport> {
    assertCount('top', top);
    const label = periodLabel(period, this.#now());
    const [users, models] = await Promise.all([
      this.#store.expiringMembers(indexKey(scope, period, label, 'u')),
      this.#store.expiringMembers(indexKey(scope, period, label, 'm')),
    ]);
    const wanted: Array<[Dimension, string]> = [...users.map((u): [Dimension, string] => ['u', u]), ...models.map((m): [Dimension, string] => ['m', m])];
    const values = await this.#store.readMany(wanted.flatMap(([dim, key]) => METRICS.map((metric) => counterKey(scope, period, label, dim, key, metric))));
    // Each row's images, units and micro-dollars, as counted.
    const counts = wanted.map((_, i) => METRICS.map((_, m) => Math.max(0, values[i * METRICS.length + m] ?? 0)) as [number, number, number]);
    const used = ([images, units, micros]: [number, number, number]) => ({ images, units, usd: micros / MICRO_USD_PER_USD });
    const ranked = (dim: Dimension) =>
      wanted
        .flatMap(([d, key], i): UsageRow[] => (d === dim ? [{ key, ...used(counts[i]!) }] : []))
        .sort((a, b) => b.units - a.units || b.images - a.images || b.usd - a.usd || a.key.localeCompare(b.key))
        .slice(0, top);
    // Every job adds to its user's row, so the users' rows sum to the whole.
    const sum: [number, number, number] = [0, 0, 0];
    wanted.forEach(([dim], i) => {
      if (dim === 'u') for (let m = 0; m < METRICS.length; m++) sum[m]! += counts[i]![m]!;
    });
    return { period, label, total: used(sum), byUser: ranked('u'), byModel: ranked('m') };
  }
}
