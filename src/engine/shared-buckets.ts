/**
 * The shared half of a RateBudget (rate-budget.ts): fixed time buckets counted in the store, the
 * hard guarantee across processes (docs/rate-budget.md). Every process using the key (bot processes on one Redis, the bot and `npm run imagine` on one SQLite file, a
 * process restarted after SIGKILL and the grants its predecessor made) takes each token from one
 * counter per time bucket in the store, with the store's atomic `addIfWithin`. Time is cut into
 * buckets of B = ceil((W + m) / k) ms (bucket j = [jB, (j+1)B) on the epoch clock); each allows
 * L = floor(N / (k + 1)) grants in total, whoever makes them. N, W: the provider's limit (20 per
 * 10_000 ms); k: `bucketsPerWindow`; m: `sharedMarginMs`.
 *
 * Bound (why the sum over processes never exceeds N in any window of W at the provider): let
 * every process clock be within ±δ of true time and every request reach the provider between
 * d and d + D after its grant (network, queueing, event-loop stalls), with 2δ + D ≤ m. A request
 * granted in bucket j by its process's clock was granted at true time in [jB − δ, (j+1)B + δ),
 * so it arrives in [jB + c, (j+1)B + c + m) with c = d − δ the same for all. A provider window
 * [t, t + W) meets that interval iff jB + c < t + W and (j+1)B + c + m > t, i.e. iff j lies in
 * the open interval ((t − c − m)/B − 1, (t − c + W)/B), of length (W + m)/B + 1 ≤ k + 1; an open
 * interval of length ≤ k + 1 holds at most k + 1 integers. So at most k + 1 buckets feed any
 * window: at most (k + 1)·L ≤ N requests. (The same m also covers a provider window up to m
 * longer than documented.) Defaults k = 9, m = 500 ms: B = 1_167 ms, L = 2 → at most 20 per
 * 10 s, 18 per 10.5 s usable (about 17 per 10 s sustained, shared by all processes).
 * Only grants made while the bucket still runs count: a store answer that comes back after
 * its bucket ended is not used (the token is wasted, never late). When a bucket is full the
 * budget sleeps until the next one starts: one store call per full bucket, never a spin. A
 * store that fails is treated as a full bucket (fail closed: `onError` hears of it).
 */
import type { Sleep } from '../util/sleep.ts';
import type { Store } from './store.ts';

/** Where the processes sharing a key count their grants. */
export interface SharedRateBudget {
  /** The store's atomic counters (every process using the key must use the same store). */
  counters: Pick<Store, 'addIfWithin'>;
  /** Names the API key (a hash, never the key): budgets with the same keyId share one limit. */
  keyId: string;
  /** Hears of a failing store; the budget then waits for the next bucket and tries again. */
  onError?: (err: unknown) => void;
}

export interface SharedBucketsOptions {
  /** N and W: the provider's limit. */
  requests: number;
  windowMs: number;
  /** k. Default 9 (at most requests - 1). */
  bucketsPerWindow?: number | undefined;
  /** m: clock skew between processes (2δ) plus grant-to-arrival spread (D). Default 500 ms. */
  sharedMarginMs?: number | undefined;
  now: () => number;
  sleep: Sleep;
}

export const DEFAULT_BUCKETS_PER_WINDOW = 9;
export const DEFAULT_SHARED_MARGIN_MS = 500;

const STORE_TOO_LATE: unique symbol = Symbol('store answered after the bucket ended');

export class SharedBuckets {
  /** B: the bucket length. */
  readonly bucketMs: number;
  /** L: grants per bucket, over every process. */
  readonly perBucket: number;
  readonly #shared: SharedRateBudget;
  readonly #providerWindowMs: number;
  readonly #now: () => number;
  readonly #sleep: Sleep;
  /** The latest bucket this budget has heard of, and the highest count the store reported for it. */
  #bucketIndex = -Infinity;
  #bucketUsed = 0;
  /** A token taken for bucket #spare but not handed out (its waiter left meanwhile, or a pause began). */
  #spare: number | undefined;

  constructor(shared: SharedRateBudget, opts: SharedBucketsOptions) {
    // At least k + 1 buckets feed a window, each allowing one request or more: needs requests ≥ 2.
    if (!(opts.requests >= 2)) throw new RangeError(`a shared RateBudget needs requests >= 2, got ${opts.requests}`);
    const k = opts.bucketsPerWindow ?? Math.min(DEFAULT_BUCKETS_PER_WINDOW, opts.requests - 1);
    const marginMs = opts.sharedMarginMs ?? DEFAULT_SHARED_MARGIN_MS;
    const perBucket = Math.floor(opts.requests / (k + 1));
    if (!Number.isSafeInteger(k) || k < 1 || perBucket < 1) {
      throw new RangeError(`bucketsPerWindow must be an integer from 1 to requests - 1 (${opts.requests - 1}), got ${k}`);
    }
    if (!(marginMs >= 0)) throw new RangeError(`sharedMarginMs must be >= 0, got ${marginMs}`);
    this.bucketMs = Math.ceil((opts.windowMs + marginMs) / k);
    this.perBucket = perBucket;
    this.#shared = shared;
    this.#providerWindowMs = opts.windowMs;
    this.#now = opts.now;
    this.#sleep = opts.sleep;
  }

  /** Tokens left in the current bucket as far as this process knows (the store has the last word). */
  free(now: number): number {
    const index = Math.floor(now / this.bucketMs);
    const used = index === this.#bucketIndex ? this.#bucketUsed : 0;
    return Math.max(0, this.perBucket - used) + (this.#spare === index ? 1 : 0);
  }

  /** Whether a token of the current bucket was taken from the store and is still unused. */
  hasSpare(now: number): boolean {
    return this.#spare === Math.floor(now / this.bucketMs);
  }

  /** Hands the spare token out. */
  useSpare(): void {
    this.#spare = undefined;
  }

  /** Ms from `now` until the start of the bucket `ahead` buckets later. */
  msUntilBucket(now: number, ahead: number): number {
    return (Math.floor(now / this.bucketMs) + ahead) * this.bucketMs - now;
  }

  /**
   * Takes one token of the current bucket from the store, kept as spare until handed out. False
   * when the bucket is full, the store failed, or the answer came after the bucket ended (that
   * token is not used: the bound counts grants made within their bucket).
   */
  async claim(): Promise<boolean> {
    const { bucketMs, perBucket } = this;
    const shared = this.#shared;
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
    } else {
      this.#bucketUsed = Math.max(this.#bucketUsed, used);
    }
  }
}
