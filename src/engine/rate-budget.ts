/**
 * A per-API-key request budget. Runbase allows 20 requests per 10 s per key, creates and polls
 * counted together (docs/providers.md), so one RateBudget per key is passed as the provider
 * client's `gate` (RequestGate): every HTTP attempt, retries included, takes a token.
 *
 * Two limits, both must allow a request:
 *
 * 1. Local sliding window (smoothness, and the whole budget when nothing else shares the key):
 *    never more than `limit` starts in any `windowMs`. Our clock stamps a request when it leaves,
 *    the provider counts it when it arrives, so by default it keeps `reserve` = 10% back (20 → 18)
 *    and pads the window by `windowPaddingMs` = 250 ms. `reserve: 0, windowPaddingMs: 0` = exact.
 *
 * 2. Shared fixed buckets (`shared`: the hard guarantee across processes): see shared-buckets.ts
 *    (docs/rate-budget.md has the proof that the sum over processes stays within the limit).
 *
 * Waiters are served in order, creates before polls: a user waiting for a job to start matters
 * more than a poll a few hundred ms late, and the poll scheduler re-plans around the delay. But
 * when the budget binds, creates alone would starve every poll (200 queued creates = 2 minutes of
 * tokens) while finished tasks wait undetected and their short-lived result URLs age; so after
 * `maxConsecutiveCreates` creates in a row (default 1) a waiting poll gets the next token.
 *
 * Result downloads are not counted: see DownloadResultOptions.gate in results.ts.
 */
import { estimateWaitMs } from './estimates.ts';
import { sleep, type Sleep } from '../util/sleep.ts';
import { SharedBuckets, type SharedRateBudget } from './shared-buckets.ts';

export type { SharedRateBudget } from './shared-buckets.ts';

export type BudgetKind = 'create' | 'poll';

export interface RateBudgetOptions {
  /** The provider's limit: requests per window (Runbase: 20). */
  requests: number;
  /** The provider's window (Runbase: 10_000 ms). */
  windowMs: number;
  /** Requests held back from `requests` by the local window. Default: 10% (rounded down), so 20 → 18. */
  reserve?: number;
  /** Added to `windowMs` by the local window to absorb network jitter. Default 250 ms. */
  windowPaddingMs?: number;
  /**
   * Creates granted in a row before a waiting poll goes first. Default 1 (alternate while both
   * wait); Infinity = creates strictly first; 0 = waiting polls strictly first (best median job
   * time when the budget binds hard: see bench/poll.ts).
   */
  maxConsecutiveCreates?: number;
  /** Shares the budget with every process using the same key and store (see the file comment). */
  shared?: SharedRateBudget;
  /** k of the shared buckets: B = ceil((windowMs + m) / k), L = floor(requests / (k + 1)). Default 9 (at most requests - 1). */
  bucketsPerWindow?: number;
  /** m of the shared buckets: clock skew between processes (2δ) plus grant-to-arrival spread (D). Default 500 ms. */
  sharedMarginMs?: number;
  now?: () => number;
  /** Waits `ms`; should settle early (resolve or reject) when `signal` aborts. */
  sleep?: Sleep;
}

export const DEFAULT_WINDOW_PADDING_MS = 250;

interface Waiter {
  kind: BudgetKind;
  resolve: () => void;
  reject: (reason: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

export class RateBudget {
  /** Requests actually allowed per local window (after the reserve). */
  readonly limit: number;
  /** The local window actually enforced (after padding). */
  readonly windowMs: number;
  /** The shared buckets (B and L of the file comment), when the budget is shared. */
  readonly sharedBuckets: { bucketMs: number; perBucket: number } | undefined;
  readonly #now: () => number;
  readonly #sleep: Sleep;
  /** Start times of the requests granted within the last window, oldest first. */
  #stamps: number[] = [];
  readonly #creates: Waiter[] = [];
  readonly #polls: Waiter[] = [];
  #pumping = false;
  #wake: AbortController | undefined;
  #pausedUntil = 0;
  #granted = 0;
  #createsInARow = 0;
  readonly #maxConsecutiveCreates: number;
  readonly #shared: SharedBuckets | undefined;

  constructor(opts: RateBudgetOptions) {
    if (!(opts.requests >= 1) || !(opts.windowMs > 0)) throw new RangeError('RateBudget needs requests >= 1 and windowMs > 0');
    const reserve = opts.reserve ?? Math.floor(opts.requests * 0.1);
    this.limit = Math.max(1, Math.floor(opts.requests - reserve));
    this.windowMs = opts.windowMs + (opts.windowPaddingMs ?? DEFAULT_WINDOW_PADDING_MS);
    this.#now = opts.now ?? Date.now;
    this.#sleep = opts.sleep ?? sleep;
    this.#maxConsecutiveCreates = Math.max(0, opts.maxConsecutiveCreates ?? 1);
    if (opts.shared) {
      this.#shared = new SharedBuckets(opts.shared, {
        requests: opts.requests,
        windowMs: opts.windowMs,
        bucketsPerWindow: opts.bucketsPerWindow,
        sharedMarginMs: opts.sharedMarginMs,
        now: this.#now,
        sleep: this.#sleep,
      });
      this.sharedBuckets = { bucketMs: this.#shared.bucketMs, perBucket: this.#shared.perBucket };
    }
    // Bound, so `budget.acquire` can be handed to a provider client as its RequestGate as is.
    this.acquire = this.acquire.bind(this);
  }

  /** Resolves when a request of this kind may start (the token is taken on resolve). Rejects with the signal's reason on abort. */
  acquire(kind: BudgetKind, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    // Unshared: decided here and now. Shared: the store must agree first (the pump asks it).
    if (!this.#shared && this.#waiting() === 0 && this.#free() > 0) {
      this.#take(kind);
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { kind, resolve, reject, signal, onAbort: undefined };
      if (signal) {
        waiter.onAbort = () => {
          this.#remove(waiter);
          reject(signal.reason);
          if (this.#waiting() === 0) this.#wake?.abort();
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      (kind === 'create' ? this.#creates : this.#polls).push(waiter);
      void this.#pump();
    });
  }

  /**
   * Tokens free right now and not already promised to a waiter. Shared: as far as this process
   * knows (another process may have taken the rest of the bucket; the store has the last word).
   */
  available(): number {
    return Math.max(0, this.#free() - this.#waiting());
  }

  /** Milliseconds until `available()` may become positive (0 when it already is). */
  msUntilAvailable(): number {
    const now = this.#now();
    this.#prune(now);
    const pause = Math.max(0, this.#pausedUntil - now);
    const waiting = this.#waiting();
    const needed = this.#stamps.length + waiting - this.limit; // stamps that must expire first
    const stamp = needed < 0 ? undefined : this.#stamps[needed];
    let ms = Math.max(pause, stamp === undefined ? 0 : Math.max(0, stamp + this.windowMs - now));
    const shared = this.#shared;
    if (shared) {
      const freeNow = shared.free(now);
      if (freeNow <= waiting) {
        // This bucket's tokens go to the waiters; each next bucket serves L more.
        ms = Math.max(ms, shared.msUntilBucket(now, Math.floor((waiting - freeNow) / shared.perBucket) + 1));
      }
    }
    return ms;
  }

  /**
   * Stops granting tokens for `ms` (e.g. after an unexpected 429 RATE_LIMITED: someone else shares
   * the key). Waiters keep their place.
   */
  pauseFor(ms: number): void {
    this.#pausedUntil = Math.max(this.#pausedUntil, this.#now() + ms);
    this.#wake?.abort();
    if (this.#waiting() > 0) void this.#pump();
  }

  /**
   * Where the creates of a run (its `signal`, as passed to acquire) stand in the queue: how many
   * other runs' creates wait before its first one, and how long until its turn (estimates.ts,
   * from this budget's window). Undefined when none of its creates waits.
   */
  queuePosition(signal: AbortSignal): { ahead: number; etaMs: number } | undefined {
    const index = this.#creates.findIndex((w) => w.signal === signal);
    if (index < 0) return undefined;
    const ahead = new Set(this.#creates.slice(0, index).map((w) => w.signal)).size;
    // Polls waiting alternate with creates (maxConsecutiveCreates), so they take turns before it too.
    const before = index + Math.min(this.#polls.length, this.#maxConsecutiveCreates === 0 ? this.#polls.length : Math.ceil((index + 1) / this.#maxConsecutiveCreates));
    const now = this.#now();
    this.#prune(now);
    const etaMs = estimateWaitMs({ now, stamps: this.#stamps, windowMs: this.windowMs, limit: this.limit, pausedUntil: this.#pausedUntil }, before + 1);
    return { ahead, etaMs };
  }

  /** Requests of `kind` waiting for a token. */
  waiting(kind: BudgetKind): number {
    return kind === 'create' ? this.#creates.length : this.#polls.length;
  }

  /** Tokens granted since creation (for metrics and tests). */
  get granted(): number {
    return this.#granted;
  }

  #waiting(): number {
    return this.#creates.length + this.#polls.length;
  }

  #free(): number {
    const now = this.#now();
    if (now < this.#pausedUntil) return 0;
    this.#prune(now);
    return Math.min(this.limit - this.#stamps.length, this.#shared ? this.#shared.free(now) : Infinity);
  }

  #prune(now: number): void {
    let drop = 0;
    while (drop < this.#stamps.length && (this.#stamps[drop] as number) + this.windowMs <= now) drop++;
    if (drop > 0) this.#stamps = this.#stamps.slice(drop);
  }

  #take(kind: BudgetKind): void {
    this.#createsInARow = kind === 'create' ? this.#createsInARow + 1 : 0;
    this.#stamps.push(this.#now());
    this.#granted++;
  }

  #remove(waiter: Waiter): void {
    for (const queue of [this.#creates, this.#polls]) {
      const i = queue.indexOf(waiter);
      if (i >= 0) queue.splice(i, 1);
    }
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#waiting() > 0) {
        if (this.#free() > 0) {
          if (this.#shared && !this.#shared.hasSpare(this.#now())) {
            // Full, failed or stale: #free() now says so, and the loop sleeps until the next bucket.
            if (!(await this.#shared.claim())) continue;
            // Every waiter left, or a pause began, while the store answered: the token stays spare.
            if (this.#waiting() === 0 || this.#free() <= 0) continue;
          }
          this.#shared?.useSpare();
          // Chosen after the store answered, so a create that arrived meanwhile still goes first.
          const pollsTurn = this.#polls.length > 0 && this.#createsInARow >= this.#maxConsecutiveCreates;
          const waiter = pollsTurn ? this.#polls.shift() : (this.#creates.shift() ?? this.#polls.shift());
          if (!waiter) break;
          if (waiter.onAbort) waiter.signal?.removeEventListener('abort', waiter.onAbort);
          this.#take(waiter.kind);
          waiter.resolve();
          continue;
        }
        const waitMs = Math.max(1, this.#headWaitMs());
        const wake = new AbortController();
        this.#wake = wake;
        try {
          await this.#sleep(waitMs, wake.signal);
        } catch {
          // woken early (abort or pause change): re-check the queue
        }
        this.#wake = undefined;
      }
    } finally {
      this.#pumping = false;
    }
  }

  /** Time until the head waiter can be served. */
  #headWaitMs(): number {
    const now = this.#now();
    this.#prune(now);
    const pause = Math.max(0, this.#pausedUntil - now);
    const needed = this.#stamps.length - this.limit;
    const stamp = needed < 0 ? undefined : this.#stamps[needed];
    const expiry = stamp === undefined ? 0 : Math.max(0, stamp + this.windowMs - now);
    const nextBucket = this.#shared && this.#shared.free(now) <= 0 ? this.#shared.msUntilBucket(now, 1) : 0;
    return Math.max(pause, expiry, nextBucket);
  }
}
