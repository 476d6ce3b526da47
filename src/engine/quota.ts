/**
 * Per-user daily allowances in units (1K image = 1, 2K = 2, 4K = 4 unless configured otherwise)
 * and the bot-wide daily spending cap. Both are counters in the store, one per UTC day, changed
 * only through the store's atomic operations, so they stay exact across concurrent requests and
 * across processes sharing one store.
 *
 * A job in a server (a Discord guild, a Slack workspace) is also counted on that server's own
 * spend counter, against its ServerSettings.spendCapUsd when set (reserveSpend with a scope).
 *
 * Life of a reservation: reserve() before submitting; nothing more on success (the units stay
 * spent); refund() what was not delivered. A job's settlement uses refundOnce()/adjustSpendOnce():
 * each change and its "done" guard are one atomic store step (Store.addOnce), so a process that
 * dies at any point and settles the job again after a restart neither loses nor repeats it.
 */
import type { QuotaView } from './api.ts';
import { QuotaExceededError, ServerSpendCapError, SpendCapError } from './errors.ts';
import { UNLIMITED, type ScopeKey } from './governance/api.ts';
import { PriceBook } from './governance/prices.ts';
import type { ModelSpec, Resolution } from './models.ts';
import type { Requester } from './request.ts';
import type { Store } from './store.ts';

export const DAY_MS = 24 * 60 * 60 * 1000;
/** Counters outlive their day by this much, so a late refund or adjustment still finds them. */
const COUNTER_RETENTION_AFTER_DAY_MS = 2 * DAY_MS;
/** Spend is counted in integer micro-dollars: the store's counters are integers. */
const MICRO_USD_PER_USD = 1_000_000;

/** The UTC day of an instant, as YYYY-MM-DD (sorts like time). */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** Epoch ms of 00:00 UTC on `day` (YYYY-MM-DD). */
export function utcDayStart(day: string): number {
  const ms = Date.parse(`${day}T00:00:00.000Z`);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(day) || Number.isNaN(ms)) throw new RangeError(`not a UTC day: ${day}`);
  return ms;
}

/** The next UTC midnight strictly after `ms`. */
export function nextUtcMidnight(ms: number): number {
  return Math.floor(ms / DAY_MS) * DAY_MS + DAY_MS;
}

export interface QuotaOptions {
  /** Units per user per UTC day. 0: only exempt users can generate. */
  dailyUnits: number;
  /** Units one image costs at each resolution. */
  costs: Record<Resolution, number>;
  /** User ids with no limit, bare (`123`) or qualified by platform (`discord:123`). */
  exemptUsers: readonly string[];
  /** Bot-wide daily cap in USD; undefined turns the cap off. */
  spendCapUsd?: number | undefined;
  now?: () => number;
  /** Learned per-image prices for spend reservations; default one over this store. */
  prices?: PriceBook;
}

export interface QuotaReservation {
  /** The UTC day charged; give it back to refund(). */
  day: string;
  /** Units taken (0 for exempt users). */
  reserved: number;
}

export interface SpendReservation {
  /** The UTC day charged; give it back to adjustSpend(). */
  day: string;
  reservedUsd: number;
  /** The server whose own counter was charged too (reserveSpend with a scope); release it with adjustServerSpend*. */
  scope?: ScopeKey;
}

export class Quotas {
  readonly dailyUnits: number;
  readonly costs: Readonly<Record<Resolution, number>>;
  readonly spendCapUsd: number | undefined;
  /** What a spend reservation estimates an image at (governance/prices.ts). */
  readonly prices: PriceBook;
  readonly #store: Store;
  readonly #exempt: ReadonlySet<string>;
  readonly #now: () => number;

  constructor(store: Store, opts: QuotaOptions) {
    if (!Number.isSafeInteger(opts.dailyUnits) || opts.dailyUnits < 0)
      throw new RangeError(`dailyUnits must be a non-negative integer, got ${opts.dailyUnits}`);
    for (const [resolution, cost] of Object.entries(opts.costs))
      if (!Number.isSafeInteger(cost) || cost < 0)
        throw new RangeError(`cost of ${resolution} must be a non-negative integer, got ${cost}`);
    if (opts.spendCapUsd !== undefined && !(opts.spendCapUsd > 0))
      throw new RangeError(`spendCapUsd must be positive, got ${opts.spendCapUsd}`);
    this.#store = store;
    this.dailyUnits = opts.dailyUnits;
    this.costs = { ...opts.costs };
    this.spendCapUsd = opts.spendCapUsd;
    this.#exempt = new Set(opts.exemptUsers.map((u) => u.trim()).filter(Boolean));
    this.#now = opts.now ?? Date.now;
    this.prices = opts.prices ?? new PriceBook(store, { now: this.#now });
  }

  /** `platform:userId`: the same id on two platforms is two people. */
  userKey(requester: Requester): string {
    return `${requester.platform}:${requester.userId}`;
  }

  isExempt(requester: Requester): boolean {
    return this.#exempt.has(requester.userId) || this.#exempt.has(this.userKey(requester));
  }

  unitsFor(resolution: Resolution, count: number): number {
    return count * this.costs[resolution];
  }

  /** Today's UTC day by the injected clock. */
  today(): string {
    return utcDay(this.#now());
  }

  /**
   * Takes `units` from today's allowance, atomically (one store step, so a 100-way race stays
   * exact). `limit` is the effective allowance (a server's tiers, overrides and grants applied by
   * governance/policy.ts; default the operator's QUOTA_DAILY_UNITS). The counter is per user per
   * UTC day whatever the server, so a user's total can never pass what the operator allows.
   * Throws QuotaExceededError (nothing taken) when they do not fit. Exempt users reserve nothing
   * and never fail; an unlimited allowance counts the units without a limit.
   */
  async reserve(requester: Requester, units: number, limit: number | typeof UNLIMITED = this.dailyUnits): Promise<QuotaReservation> {
    if (!Number.isSafeInteger(units) || units < 0) throw new RangeError(`units must be a non-negative integer, got ${units}`);
    const now = this.#now();
    const day = utcDay(now);
    if (this.isExempt(requester)) return { day, reserved: 0 };
    const resetsAt = nextUtcMidnight(now);
    const key = this.#userCounterKey(this.userKey(requester), day);
    if (limit === UNLIMITED) {
      await this.#store.add(key, units, this.#counterExpiry(day));
      return { day, reserved: units };
    }
    if (limit === 0) throw new QuotaExceededError(units, 0, resetsAt);
    const after = await this.#store.addIfWithin(key, units, limit, this.#counterExpiry(day));
    if (after === null) {
      const used = await this.#store.read(key);
      throw new QuotaExceededError(units, Math.max(0, limit - used), resetsAt);
    }
    return { day, reserved: units };
  }

  /** Units an admin of `scope` granted `userKey` for today (read into that server's limit). */
  async grantedToday(scope: string, userKey: string): Promise<number> {
    return Math.max(0, await this.#store.read(this.#grantCounterKey(scope, userKey, this.today())));
  }

  /**
   * Adds `units` to today's grant for `userKey` in `scope`, atomically, as long as the day's
   * grants stay ≤ `maxTotal` (the operator's ceiling). The new total, or null when it would pass.
   */
  async grant(scope: string, userKey: string, units: number, maxTotal: number): Promise<number | null> {
    const day = this.today();
    return this.#store.addIfWithin(this.#grantCounterKey(scope, userKey, day), units, maxTotal, this.#counterExpiry(day));
  }

  /** Zeroes `userKey`'s units used today (an admin's "reset"), in one atomic store step. */
  async resetToday(userKey: string): Promise<void> {
    await this.#store.resetCounter(this.#userCounterKey(userKey, this.today()));
  }

  /**
   * Gives back units reserved on `day` (e.g. images that failed). A refund for a day that is
   * already over changes nothing: yesterday's allowance cannot be used any more.
   */
  async refund(requester: Requester | string, day: string, units: number): Promise<void> {
    if (units <= 0) return;
    if (day < this.today()) return;
    const key = this.#userCounterKey(typeof requester === 'string' ? requester : this.userKey(requester), day);
    await this.#subtractFloorZero(key, units, this.#counterExpiry(day));
  }

  /**
   * refund(), exactly once per `settlementId` (e.g. one job's settlement): the refund and its
   * guard are one atomic store step. True when this call refunded; false when an earlier call
   * with the same id did, or when nothing is due (no units, or a day already over).
   */
  async refundOnce(settlementId: string, requester: Requester | string, day: string, units: number): Promise<boolean> {
    if (!Number.isSafeInteger(units) || units < 0) throw new RangeError(`units must be a non-negative integer, got ${units}`);
    if (units === 0 || day < this.today()) return false;
    const key = this.#userCounterKey(typeof requester === 'string' ? requester : this.userKey(requester), day);
    const expiresAt = this.#counterExpiry(day);
    // Floor 0, like refund(): a negative counter would grant more than the daily allowance.
    return this.#store.addOnce(`quota-refund:${settlementId}`, this.#guardTtlMs(expiresAt), key, -units, expiresAt, 0);
  }

  /** What `/quota` shows, against `limit` (the effective allowance; default QUOTA_DAILY_UNITS). */
  async view(requester: Requester, limit: number | typeof UNLIMITED = this.dailyUnits): Promise<QuotaView> {
    const now = this.#now();
    const day = utcDay(now);
    const used = Math.max(0, await this.#store.read(this.#userCounterKey(this.userKey(requester), day)));
    // An unlimited allowance reads like an exemption: "no daily image limit".
    const numeric = limit === UNLIMITED ? 0 : limit;
    return {
      exempt: this.isExempt(requester) || limit === UNLIMITED,
      limit: numeric,
      used,
      left: Math.max(0, numeric - used),
      resetsAt: nextUtcMidnight(now),
      costs: { ...this.costs },
    };
  }

  /**
   * Reserves an estimated cost against today's spending caps, atomically enough that neither can
   * be overshot: with `server`, first the server's own counter (against `capUsd`, its
   * ServerSettings.spendCapUsd; counted even without a cap, so a cap set later in the day sees
   * the day's spend), then the global one; when the global cap refuses, the server part is given
   * back. Throws ServerSpendCapError or SpendCapError with nothing reserved. With the global cap
   * off, spending is still counted.
   */
  async reserveSpend(usd: number, server?: { scope: ScopeKey; capUsd: number | undefined }): Promise<SpendReservation> {
    const now = this.#now();
    const day = utcDay(now);
    const micros = toMicros(usd);
    if (micros <= 0) return { day, reservedUsd: 0 };
    const expiresAt = this.#counterExpiry(day);
    const serverKey = server ? this.#serverSpendCounterKey(server.scope, day) : undefined;
    if (server && serverKey) {
      if (server.capUsd === undefined) await this.#store.add(serverKey, micros, expiresAt);
      else if ((await this.#store.addIfWithin(serverKey, micros, toMicros(server.capUsd), expiresAt)) === null)
        throw new ServerSpendCapError(nextUtcMidnight(now));
    }
    const key = this.#spendCounterKey(day);
    try {
      if (this.spendCapUsd === undefined) {
        await this.#store.add(key, micros, expiresAt);
      } else {
        const after = await this.#store.addIfWithin(key, micros, toMicros(this.spendCapUsd), expiresAt);
        if (after === null) throw new SpendCapError(nextUtcMidnight(now));
      }
    } catch (err) {
      if (serverKey) await this.#subtractFloorZero(serverKey, micros, expiresAt);
      throw err;
    }
    return { day, reservedUsd: micros / MICRO_USD_PER_USD, ...(server ? { scope: server.scope } : {}) };
  }

  /** The per-image estimate times `count`: what reserveSpend() is given for a job (learned prices, governance/prices.ts). */
  estimateSpendUsd(model: ModelSpec, resolution: Resolution, count: number): number {
    return this.prices.estimate(model, resolution) * count;
  }

  /** adjustSpend() for a server's own counter (reserveSpend with a scope). */
  async adjustServerSpend(scope: ScopeKey, day: string, deltaUsd: number): Promise<void> {
    const micros = toMicros(deltaUsd);
    if (micros === 0) return;
    const key = this.#serverSpendCounterKey(scope, day);
    const expiresAt = this.#counterExpiry(day);
    if (micros > 0) await this.#store.add(key, micros, expiresAt);
    else await this.#subtractFloorZero(key, -micros, expiresAt);
  }

  /** adjustSpendOnce() for a server's own counter, with its own guard (the global one is separate). */
  async adjustServerSpendOnce(settlementId: string, scope: ScopeKey, day: string, deltaUsd: number): Promise<boolean> {
    const micros = toMicros(deltaUsd);
    if (micros === 0) return false;
    const expiresAt = this.#counterExpiry(day);
    const guard = `spend-adjust-server:${settlementId}`;
    return this.#store.addOnce(guard, this.#guardTtlMs(expiresAt), this.#serverSpendCounterKey(scope, day), micros, expiresAt, micros < 0 ? 0 : undefined);
  }

  /** USD counted against a server's own cap today. */
  async serverSpentToday(scope: ScopeKey): Promise<number> {
    const micros = await this.#store.read(this.#serverSpendCounterKey(scope, this.today()));
    return Math.max(0, micros) / MICRO_USD_PER_USD;
  }

  /**
   * Corrects a reservation on `day` by `deltaUsd`: positive when the provider reported more than
   * the estimate (always recorded: the money is spent), negative to release an estimate.
   */
  async adjustSpend(day: string, deltaUsd: number): Promise<void> {
    const micros = toMicros(deltaUsd);
    if (micros === 0) return;
    const key = this.#spendCounterKey(day);
    const expiresAt = this.#counterExpiry(day);
    if (micros > 0) await this.#store.add(key, micros, expiresAt);
    else await this.#subtractFloorZero(key, -micros, expiresAt);
  }

  /**
   * adjustSpend(), exactly once per `settlementId`, atomically with its guard. True when this
   * call adjusted; false when an earlier call with the same id did, or the delta rounds to 0.
   */
  async adjustSpendOnce(settlementId: string, day: string, deltaUsd: number): Promise<boolean> {
    const micros = toMicros(deltaUsd);
    if (micros === 0) return false;
    const expiresAt = this.#counterExpiry(day);
    const guard = `spend-adjust:${settlementId}`;
    // A release stops at 0 (like adjustSpend); money reported spent is always recorded.
    return this.#store.addOnce(guard, this.#guardTtlMs(expiresAt), this.#spendCounterKey(day), micros, expiresAt, micros < 0 ? 0 : undefined);
  }

  /** USD counted against today's cap (reservations plus adjustments). */
  async spentToday(): Promise<number> {
    const micros = await this.#store.read(this.#spendCounterKey(this.today()));
    return Math.max(0, micros) / MICRO_USD_PER_USD;
  }

  #userCounterKey(userKey: string, day: string): string {
    return `quota:${day}:${userKey}`;
  }

  #grantCounterKey(scope: string, userKey: string, day: string): string {
    return `grant:${day}:${scope}:${userKey}`;
  }

  #spendCounterKey(day: string): string {
    return `spend:${day}`;
  }

  #serverSpendCounterKey(scope: ScopeKey, day: string): string {
    return `spend-server:${day}:${scope}`;
  }

  #counterExpiry(day: string): number {
    return utcDayStart(day) + DAY_MS + COUNTER_RETENTION_AFTER_DAY_MS;
  }

  /** A once-only guard outlives the counter it protects (after that a repeat could change nothing that counts). */
  #guardTtlMs(counterExpiresAt: number): number {
    return Math.max(0, counterExpiresAt - this.#now()) + DAY_MS;
  }

  /**
   * Subtracts, then undoes any overshoot below 0. Only a double refund (a bug elsewhere) can
   * overshoot; without this a negative counter would grant more than the daily allowance.
   */
  async #subtractFloorZero(key: string, amount: number, expiresAt: number): Promise<void> {
    const after = await this.#store.add(key, -amount, expiresAt);
    if (after < 0) await this.#store.add(key, -after, expiresAt);
  }
}

function toMicros(usd: number): number {
  if (!Number.isFinite(usd)) throw new RangeError(`not a USD amount: ${usd}`);
  return Math.round(usd * MICRO_USD_PER_USD);
}
