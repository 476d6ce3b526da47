/**
 * A per-API-key request budget: a sliding-window limiter that never lets more than the allowed
 * number of requests start in any window. Runbase allows 20 requests per 10 s per key, creates
 * and polls counted together (reference/providers.md), so one RateBudget per key is passed as the
 * provider client's `gate` (RequestGate): every HTTP attempt, retries included, takes a token.
 *
 * Safety margin (why 18 of 20 over 10.25 s): our clock stamps a request when it leaves, the
 * provider counts it when it arrives; network jitter can squeeze two requests sent 10 s apart
 * into 9.9 s at the provider, and a CLI run or a second process may share the key. By default the
 * budget keeps `reserve` = 10% of the requests back (20 → 18) and pads the window by
 * `windowPaddingMs` = 250 ms. Pass `reserve: 0, windowPaddingMs: 0` for the exact limit.
 *
 * Waiters are served in order, creates before polls: a user waiting for a job to start matters
 * more than a poll a few hundred ms late, and the poll scheduler re-plans around the delay. But
 * when the budget binds, creates alone would starve every poll (200 queued creates = 2 minutes of
 * tokens) while finished tasks wait undetected and their short-lived result URLs age; so after
 * `maxConsecutiveCreates` creates in a row (default 1) a waiting poll gets the next token.
 *
 * Restarts: a process killed mid-burst leaves up to `limit` requests in the provider's window; a
 * fresh budget would not know and could send as many again at once (the resumed jobs' overdue
 * polls). With a `ledger` (storeRateLedger: per-second counters in the shared store) every grant
 * is recorded, and a new budget first loads the last window's grants and counts them as its own.
 * Result downloads are not counted: see DownloadResultOptions.gate in results.ts.
 */
import type { Store } from './store.ts';

export type BudgetKind = 'create' | 'poll';

export interface RateBudgetOptions {
  /** The provider's limit: requests per window (Runbase: 20). */
  requests: number;
  /** The provider's window (Runbase: 10_000 ms). */
  windowMs: number;
  /** Requests held back from `requests` as a safety margin. Default: 10% (rounded down), so 20 → 18. */
  reserve?: number;
  /** Added to `windowMs` to absorb network jitter. Default 250 ms. */
  windowPaddingMs?: number;
  /**
   * Creates granted in a row before a waiting poll goes first. Default 1 (alternate while both
   * wait); Infinity = creates strictly first; 0 = waiting polls strictly first (best median job
   * time when the budget binds hard: see bench/poll.ts).
   */
  maxConsecutiveCreates?: number;
  /** Records grants where the next process using the same key finds them (see the file comment). */
  ledger?: RateLedger;
  now?: () => number;
  /** Waits `ms`; should settle early (resolve or reject) when `signal` aborts. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** Where a budget records its grants so that the next process sharing the key can respect them. */
export interface RateLedger {
  /** Records one request granted at `at` (budget clock, epoch ms). Best effort. */
  record(at: number): Promise<void>;
  /** Start times of the requests recorded at or after `since`; each may be later than the real one, never earlier. */
  since(since: number, now: number): Promise<number[]>;
}

const LEDGER_BUCKET_MS = 1_000;
/** How long a bucket is kept: longer than any provider window the bot budgets for. */
const LEDGER_RETENTION_MS = 60_000;

/**
 * A RateLedger over the store's atomic counters: one counter per API key id per second. A request
 * counts as sent at the end of its second, so restored stamps expire no earlier than the real ones.
 */
export function storeRateLedger(store: Pick<Store, 'add' | 'read'>, keyId: string): RateLedger {
  const key = (bucket: number) => `ratebudget:${keyId}:${bucket}`;
  return {
    async record(at) {
      const bucket = Math.floor(at / LEDGER_BUCKET_MS);
      await store.add(key(bucket), 1, (bucket + 1) * LEDGER_BUCKET_MS + LEDGER_RETENTION_MS);
    },
    async since(since, now) {
      const buckets: number[] = [];
      for (let b = Math.floor(since / LEDGER_BUCKET_MS); b <= Math.floor(now / LEDGER_BUCKET_MS); b++) buckets.push(b);
      const counts = await Promise.all(buckets.map((b) => store.read(key(b))));
      return buckets.flatMap((b, i) => new Array<number>(Math.max(0, counts[i] ?? 0)).fill((b + 1) * LEDGER_BUCKET_MS - 1));
    },
  };
}

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
  /** Requests actually allowed per window (after the reserve). */
  readonly limit: number;
  /** The window actually enforced (after padding). */
  readonly windowMs: number;
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
  readonly #ledger: RateLedger | undefined;
  /** Set while the ledger's last window is being loaded: nothing is granted before it is. */
  #restoring: Promise<void> | undefined;

  constructor(opts: RateBudgetOptions) {
    if (!(opts.requests >= 1) || !(opts.windowMs > 0)) throw new RangeError('RateBudget needs requests >= 1 and windowMs > 0');
    const reserve = opts.reserve ?? Math.floor(opts.requests * 0.1);
    this.limit = Math.max(1, Math.floor(opts.requests - reserve));
    this.windowMs = opts.windowMs + (opts.windowPaddingMs ?? DEFAULT_WINDOW_PADDING_MS);
    this.#now = opts.now ?? Date.now;
    this.#sleep = opts.sleep ?? timerSleep;
    this.#maxConsecutiveCreates = Math.max(0, opts.maxConsecutiveCreates ?? 1);
    // Bound, so `budget.acquire` can be handed to a provider client as its RequestGate as is.
    this.acquire = this.acquire.bind(this);
    this.#ledger = opts.ledger;
    if (this.#ledger) {
      const now = this.#now();
      this.#restoring = this.#ledger
        .since(now - this.windowMs, now)
        .then(
          (earlier) => {
            this.#stamps = [...earlier, ...this.#stamps].sort((a, b) => a - b);
          },
          () => undefined, // an unreadable ledger leaves the budget as it would be without one
        )
        .finally(() => {
          this.#restoring = undefined;
          if (this.#waiting() > 0) void this.#pump();
        });
    }
  }

  /** Resolves once the ledger's last window is loaded (at once without a ledger). */
  async ready(): Promise<void> {
    await this.#restoring;
  }

  /** Resolves when a request of this kind may start (the token is taken on resolve). Rejects with the signal's reason on abort. */
  acquire(kind: BudgetKind, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (!this.#restoring && this.#waiting() === 0 && this.#free() > 0) {
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

  /** Tokens free right now and not already promised to a waiter. */
  available(): number {
    return Math.max(0, this.#free() - this.#waiting());
  }

  /** Milliseconds until `available()` may become positive (0 when it already is). */
  msUntilAvailable(): number {
    const now = this.#now();
    this.#prune(now);
    const pause = Math.max(0, this.#pausedUntil - now);
    const needed = this.#stamps.length + this.#waiting() - this.limit; // stamps that must expire first
    if (needed < 0) return pause;
    const stamp = this.#stamps[needed];
    const expiry = stamp === undefined ? 0 : Math.max(0, stamp + this.windowMs - now);
    return Math.max(pause, expiry);
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
    if (this.#restoring) return 0;
    const now = this.#now();
    if (now < this.#pausedUntil) return 0;
    this.#prune(now);
    return this.limit - this.#stamps.length;
  }

  #prune(now: number): void {
    let drop = 0;
    while (drop < this.#stamps.length && (this.#stamps[drop] as number) + this.windowMs <= now) drop++;
    if (drop > 0) this.#stamps = this.#stamps.slice(drop);
  }

  #take(kind: BudgetKind): void {
    this.#createsInARow = kind === 'create' ? this.#createsInARow + 1 : 0;
    const now = this.#now();
    this.#stamps.push(now);
    this.#granted++;
    // Best effort: a lost record only weakens the protection of the next restart.
    this.#ledger?.record(now).catch(() => undefined);
  }

  #remove(waiter: Waiter): void {
    for (const queue of [this.#creates, this.#polls]) {
      const i = queue.indexOf(waiter);
      if (i >= 0) queue.splice(i, 1);
    }
  }

  async #pump(): Promise<void> {
    if (this.#pumping || this.#restoring) return; // restoring: its end pumps again
    this.#pumping = true;
    try {
      while (this.#waiting() > 0) {
        if (this.#free() > 0) {
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
    return Math.max(pause, expiry);
  }
}
