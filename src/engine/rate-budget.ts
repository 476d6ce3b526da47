/**
 * A per-API-key request budget. Runbase allows 20 requests per 10 s per key, creates and polls
 * counted together (reference/providers.md), so one RateBudget per key is passed as the provider
 * client's `gate` (RequestGate): every HTTP attempt, retries included, takes a token.
 *
 * Two limits, both must allow a request:
 *
 * 1. Local sliding window (smoothness, and the whole budget when nothing else shares the key):
 *    never more than `limit` starts in any `windowMs`. Our clock stamps a request when it leaves,
 *    the provider counts it when it arrives, so by default it keeps `reserve` = 10% back (20 → 18)
 *    and pads the window by `windowPaddingMs` = 250 ms. `reserve: 0, windowPaddingMs: 0` = exact.
 *
 * 2. Shared fixed buckets (`shared`: the hard guarantee across processes). Every process using
 *    the key (bot processes on one Redis, the bot and `npm run imagine` on one SQLite file, a
 *    process restarted after SIGKILL and the grants its predecessor made) takes each token from one
 *    counter per time bucket in the store, with the store's atomic `addIfWithin`. Time is cut into
 *    buckets of B = ceil((W + m) / k) ms (bucket j = [jB, (j+1)B) on the epoch clock); each allows
 *    L = floor(N / (k + 1)) grants in total, whoever makes them. N, W: the provider's limit (20 per
 *    10_000 ms); k: `bucketsPerWindow`; m: `sharedMarginMs`.
 *
 *    Bound (why the sum over processes never exceeds N in any window of W at the provider): let
 *    every process clock be within ±δ of true time and every request reach the provider between
 *    d and d + D after its grant (network, queueing, event-loop stalls), with 2δ + D ≤ m. A request
 *    granted in bucket j by its process's clock was granted at true time in [jB − δ, (j+1)B + δ),
 *    so it arrives in [jB + c, (j+1)B + c + m) with c = d − δ the same for all. A provider window
 *    [t, t + W) meets that interval iff jB + c < t + W and (j+1)B + c + m > t, i.e. iff j lies in
 *    the open interval ((t − c − m)/B − 1, (t − c + W)/B), of length (W + m)/B + 1 ≤ k + 1; an open
 *    interval of length ≤ k + 1 holds at most k + 1 integers. So at most k + 1 buckets feed any
 *    window: at most (k + 1)·L ≤ N requests. (The same m also covers a provider window up to m
 *    longer than documented.) Defaults k = 9, m = 500 ms: B = 1_167 ms, L = 2 → at most 20 per
 *    10 s, 18 per 10.5 s usable (about 17 per 10 s sustained, shared by all processes).
 *    Only grants made while the bucket still runs count: a store answer that comes back after
 *    its bucket ended is not used (the token is wasted, never late). When a bucket is full the
 *    budget sleeps until the next one starts: one store call per full bucket, never a spin. A
 *    store that fails is treated as a full bucket (fail closed: `onError` hears of it).
 *
 * Waiters are served in order, creates before polls: a user waiting for a job to start matters
 * more than a poll a few hundred ms late, and the poll scheduler re-plans around the delay. But
 * when the budget binds, creates alone would starve every poll (200 queued creates = 2 minutes of
 * tokens) while finished tasks wait undetected and their short-lived result URLs age; so after
 * `maxConsecutiveCreates` creates in a row (default 1) a waiting poll gets the next token.
 *
 * Result downloads are not counted: see DownloadResultOptions.gate in results.ts.
 */
import type { Store } from './store.ts';

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
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** Where the processes sharing a key count their grants. */
export interface SharedRateBudget {
  /** The store's atomic counters (every process using the key must use the same store). */
  counters: Pick<Store, 'addIfWithin'>;
  /** Names the API key (a hash, never the key): budgets with the same keyId share one limit. */
  keyId: string;
  /** Hears of a failing store; the budget then waits for the next bucket and tries again. */
  onError?: (err: unknown) => void;
}

const STORE_TOO_LATE: unique symbol = Symbol('store answered after the bucket ended');

export const DEFAULT_BUCKETS_PER_WINDOW = 9;
export const DEFAULT_SHARED_MARGIN_MS = 500;

export const RUNBASE_REQUESTS_PER_WINDOW = 20;
export const RUNBASE_WINDOW_MS = 10_000;
export const DEFAULT_WINDOW_PADDING_MS = 250;

interface Waiter {
  kind: BudgetKind;
  resolve: () => void;
  reject: (reason: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

const timerSleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });

export class RateBudget {
  /** Requests actually allowed per local window (after the reserve). */
  readonly limit: number;
  /** The local window actually enforced (after padding). */
  readonly windowMs: number;
  /** The shared buckets (B and L of the file comment), when the budget is shared. */
  readonly sharedBuckets: { bucketMs: number; perBucket: number } | undefined;
  readonly #now: () => number;
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
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
  readonly #shared: SharedRateBudget | undefined;
  readonly #providerWindowMs: number;
  /** The latest bucket this budget has heard of, and the highest count the store reported for it. */
  #bucketIndex = -Infinity;
  #bucketUsed = 0;
  /** A shared token taken for bucket #spare but not handed out (its waiter left meanwhile, or a pause began). */
  #spare: number | undefined;

  constructor(opts: RateBudgetOptions) {
    if (!(opts.requests >= 1) || !(opts.windowMs > 0)) throw new RangeError('RateBudget needs requests >= 1 and windowMs > 0');
    const reserve = opts.reserve ?? Math.floor(opts.requests * 0.1);
    this.limit = Math.max(1, Math.floor(opts.requests - reserve));
    this.windowMs = opts.windowMs + (opts.windowPaddingMs ?? DEFAULT_WINDOW_PADDING_MS);
    this.#providerWindowMs = opts.windowMs;
    this.#now = opts.now ?? Date.now;
    this.#sleep = opts.sleep ?? timerSleep;
    this.#maxConsecutiveCreates = Math.max(0, opts.maxConsecutiveCreates ?? 1);
    this.#shared = opts.shared;
    if (opts.shared) {
      // At least k + 1 buckets feed a window, each allowing one request or more: needs requests ≥ 2.
      if (!(opts.requests >= 2)) throw new RangeError(`a shared RateBudget needs requests >= 2, got ${opts.requests}`);
      const k = opts.bucketsPerWindow ?? Math.min(DEFAULT_BUCKETS_PER_WINDOW, opts.requests - 1);
      const marginMs = opts.sharedMarginMs ?? DEFAULT_SHARED_MARGIN_MS;
      const perBucket = Math.floor(opts.requests / (k + 1));
      if (!Number.isSafeInteger(k) || k < 1 || perBucket < 1) {
        throw new RangeError(`bucketsPerWindow must be an integer from 1 to requests - 1 (${opts.requests - 1}), got ${k}`);
      }
      if (!(marginMs >= 0)) throw new RangeError(`sharedMarginMs must be >= 0, got ${marginMs}`);
      this.sharedBuckets = { bucketMs: Math.ceil((opts.windowMs + marginMs) / k), perBucket };
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
    const buckets = this.sharedBuckets;
    if (buckets) {
      const freeNow = this.#sharedFree(now);
      if (freeNow <= waiting) {
        // This bucket's tokens go to the waiters; each next bucket serves L more.
        const ahead = Math.floor((waiting - freeNow) / buckets.perBucket) + 1;
        ms = Math.max(ms, (Math.floor(now / buckets.bucketMs) + ahead) * buckets.bucketMs - now);
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
    return Math.min(this.limit - this.#stamps.length, this.#sharedFree(now));
  }

  /** Shared tokens left in the current bucket as far as this process knows (Infinity unshared). */
  #sharedFree(now: number): number {
    const buckets = this.sharedBuckets;
    if (!buckets) return Infinity;
    const index = Math.floor(now / buckets.bucketMs);
    const used = index === this.#bucketIndex ? this.#bucketUsed : 0;
    return Math.max(0, buckets.perBucket - used) + (this.#spare === index ? 1 : 0);
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
          if (this.sharedBuckets && this.#spare !== Math.floor(this.#now() / this.sharedBuckets.bucketMs)) {
            // Full, failed or stale: #free() now says so, and the loop sleeps until the next bucket.
            if (!(await this.#claimShared())) continue;
            // Every waiter left, or a pause began, while the store answered: the token stays spare.
            if (this.#waiting() === 0 || this.#free() <= 0) continue;
          }
          this.#spare = undefined;
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

  /**
   * Takes one token of the current bucket from the store, kept as #spare until handed out. False
   * when the bucket is full, the store failed, or the answer came after the bucket ended (that
   * token is not used: the bound counts grants made within their bucket).
   */
  async #claimShared(): Promise<boolean> {
    const shared = this.#shared as SharedRateBudget;
    const { bucketMs, perBucket } = this.sharedBuckets as { bucketMs: number; perBucket: number };
    const index = Math.floor(this.#now() / bucketMs);
    this.#spare = undefined;
    let after: number | null;
    // An answer after the bucket ended is useless: a store that hangs (e.g. Redis reconnecting,
    // commands queued) counts as failed once the bucket is over, instead of holding every request.
    const stopWaiting = new AbortController();
    try {
      const call = shared.counters.addIfWithin(
        `ratebudget:${shared.keyId}:${bucketMs}:${index}`,
        1,
        perBucket,
        (index + 1) * bucketMs + this.#providerWindowMs,
      );
      const bucketOver = this.#sleep(Math.max(1, (index + 1) * bucketMs - this.#now()), stopWaiting.signal).then((): typeof STORE_TOO_LATE => STORE_TOO_LATE);
      const answer: number | null | typeof STORE_TOO_LATE = await Promise.race([call, bucketOver]);
      if (answer === STORE_TOO_LATE) {
        call.catch(() => undefined); // its late answer or failure no longer matters
        throw new Error('the store did not answer within the rate bucket');
      }
      after = answer;
    } catch (err) {
      try {
        shared.onError?.(err);
      } catch {
        // a failing reporter must not stop the budget
      }
      after = null; // fail closed: as if full, so the next try is at the next bucket
    } finally {
      stopWaiting.abort();
    }
    this.#noteBucket(index, after ?? perBucket);
    if (after === null || Math.floor(this.#now() / bucketMs) !== index) return false;
    this.#spare = index;
    return true;
  }

  #noteBucket(index: number, used: number): void {
    // Any other bucket replaces the one remembered, an earlier one too: after the clock steps
    // back into a bucket already full, remembering it is what makes the pump sleep, not spin.
    if (index !== this.#bucketIndex) {
      this.#bucketIndex = index;
      this.#bucketUsed = used;
    } else if (index === this.#bucketIndex) {
      this.#bucketUsed = Math.max(this.#bucketUsed, used);
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
    const buckets = this.sharedBuckets;
    const nextBucket = buckets && this.#sharedFree(now) <= 0 ? (Math.floor(now / buckets.bucketMs) + 1) * buckets.bucketMs - now : 0;
    return Math.max(pause, expiry, nextBucket);
  }
}
