/**
 * Decides WHEN each running provider task of one API key is polled, so the key's rate budget
 * (e.g. Runbase: 20 requests / 10 s, creates included) is spent where completion is likely.
 *
 * Contract with the engine (read this before wiring it):
 * - One PollScheduler per API key, sharing that key's RateBudget with the provider client.
 * - The `poll` function given to `watch` MUST itself pass through the budget (call the client's
 *   `getTask` with `gate: budget.acquire`, which is bound). The scheduler never
 *   takes a token itself: it keeps at most `maxInFlight` polls outstanding, and when the budget
 *   binds it keeps at most one of them queued at the gate and picks the next when a token frees.
 *   So the gate does the rate enforcement and the scheduler decides the order (nudged tasks
 *   first, then earliest expected completion).
 * - `startedAt` may lie in the past (resumed jobs): overdue tasks are polled at once.
 * - A poll that ends in RateLimitedError pauses the whole budget (`rateLimitPauseMs` or the
 *   Retry-After): a 429 despite the budget means someone else spends the same key.
 *
 * When a task is polled: poll-plan.ts (a log-normal model of its duration around `expectedMs`).
 * A poll that throws a retryable error reschedules the task with exponential backoff;
 * a non-retryable ProviderError (TaskNotFoundError, MalformedResponseError…) rejects its watch.
 */
import type { Logger } from '../log.ts';
import { ProviderError, RateLimitedError } from '../providers/errors.ts';
import { TERMINAL_TASK_STATUSES, type TaskSnapshot } from '../providers/types.ts';
import { callbackSafetyNetPlan, DEFAULT_POLL_PLAN, nextPollElapsedMs, type PollPlanParams } from './poll-plan.ts';
import type { RateBudget } from './rate-budget.ts';

export interface PollSchedulerOptions {
  budget: RateBudget;
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
  log?: Logger;
  /** Polls outstanding at once (waiting at the gate or on the wire). Default 3. */
  maxInFlight?: number;
  /** σ of log(duration) assumed around expectedMs. Default 0.25 (±25%). */
  spread?: number;
  /** Chance that the task is done at the first poll. Default 0.2. */
  firstHitChance?: number;
  /** Chance that the task finished between two polls. Default 0.3. */
  hitChance?: number;
  /** Never poll before this fraction of expectedMs. Default 0.5. */
  firstPollFraction?: number;
  /** Default 500 ms. */
  minIntervalMs?: number;
  /** Largest gap between polls while completion is likely. Default 2_000 ms. */
  maxIntervalMs?: number;
  /** Completion probability past which the task is "late" and polls back off. Default 0.9. */
  tailFrom?: number;
  /** Default 1.5. */
  tailGrowth?: number;
  /** Largest gap between polls of a late task. Default 5_000 ms. */
  tailCapMs?: number;
  /** First retry delay after a failed poll; doubles per consecutive failure. Default 1_000 ms. */
  errorBackoffMs?: number;
  /** Default 30_000 ms. */
  maxErrorBackoffMs?: number;
  /** For jitter on error backoff; uniform [0, 1). */
  random?: () => number;
  /**
   * After a poll ends in 429 RATE_LIMITED despite the budget (another process or a CLI run shares
   * the key), the whole budget pauses this long (or the Retry-After). Default 2_000 ms.
   */
  rateLimitPauseMs?: number;
}

export interface WatchOptions {
  /** Typical duration of this task (model/resolution dependent). */
  expectedMs: number;
  /** Epoch ms (scheduler clock) when the provider accepted the task. */
  startedAt: number;
  signal?: AbortSignal;
  /** Called with every snapshot, terminal or not (e.g. to persist pending → running). */
  onSnapshot?: (s: TaskSnapshot) => void;
  /** The provider calls back when the task ends (nudge()): polls follow callbackSafetyNetPlan. */
  expectCallback?: boolean;
}

/** Thrown to pending watches by close(). */
export class SchedulerClosedError extends Error {
  readonly code = 'SCHEDULER_CLOSED';
  constructor() {
    super('poll scheduler closed');
    this.name = 'SchedulerClosedError';
  }
}

interface Watch {
  taskId: string;
  poll: () => Promise<TaskSnapshot>;
  expectedMs: number;
  startedAt: number;
  /** Expected completion (epoch ms), the priority key. */
  expectedAt: number;
  dueAt: number;
  inflight: boolean;
  nudged: boolean;
  nudgedInflight: boolean;
  polls: number;
  lastIntervalMs: number;
  errors: number;
  opts: WatchOptions;
  resolve: (s: TaskSnapshot) => void;
  reject: (e: unknown) => void;
  onAbort: (() => void) | undefined;
}

export class PollScheduler {
  readonly #budget: RateBudget;
  readonly #now: () => number;
  readonly #setTimer: (fn: () => void, ms: number) => unknown;
  readonly #clearTimer: (handle: unknown) => void;
  readonly #log: Logger | undefined;
  readonly #maxInFlight: number;
  readonly #plan: PollPlanParams;
  readonly #safetyNetPlan: PollPlanParams;
  readonly #errorBackoffMs: number;
  readonly #maxErrorBackoffMs: number;
  readonly #random: () => number;
  readonly #rateLimitPauseMs: number;
  readonly #watches = new Map<string, Watch>();
  #inflight = 0;
  #timer: unknown;
  #timerAt = Infinity;
  #closed = false;
  #pumpQueued = false;

  constructor(opts: PollSchedulerOptions) {
    this.#budget = opts.budget;
    this.#now = opts.now ?? Date.now;
    this.#setTimer = opts.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.#clearTimer = opts.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>));
    this.#log = opts.log;
    this.#maxInFlight = Math.max(1, opts.maxInFlight ?? 3);
    this.#plan = {
      spread: opts.spread ?? DEFAULT_POLL_PLAN.spread,
      firstHitChance: opts.firstHitChance ?? DEFAULT_POLL_PLAN.firstHitChance,
      hitChance: opts.hitChance ?? DEFAULT_POLL_PLAN.hitChance,
      firstPollFraction: opts.firstPollFraction ?? DEFAULT_POLL_PLAN.firstPollFraction,
      minIntervalMs: opts.minIntervalMs ?? DEFAULT_POLL_PLAN.minIntervalMs,
      maxIntervalMs: opts.maxIntervalMs ?? DEFAULT_POLL_PLAN.maxIntervalMs,
      tailFrom: opts.tailFrom ?? DEFAULT_POLL_PLAN.tailFrom,
      tailGrowth: opts.tailGrowth ?? DEFAULT_POLL_PLAN.tailGrowth,
      tailCapMs: opts.tailCapMs ?? DEFAULT_POLL_PLAN.tailCapMs,
    };
    this.#safetyNetPlan = callbackSafetyNetPlan(this.#plan);
    this.#errorBackoffMs = opts.errorBackoffMs ?? 1_000;
    this.#maxErrorBackoffMs = opts.maxErrorBackoffMs ?? 30_000;
    this.#random = opts.random ?? Math.random;
    this.#rateLimitPauseMs = opts.rateLimitPauseMs ?? 2_000;
  }

  /** Tasks currently watched. */
  get size(): number {
    return this.#watches.size;
  }

  /**
   * Polls `taskId` until a terminal snapshot (succeeded | failed), which it resolves with.
   * Rejects with the signal's reason on abort, with a non-retryable ProviderError from `poll`,
   * or with SchedulerClosedError. Watching a task id already watched rejects.
   */
  watch(taskId: string, poll: () => Promise<TaskSnapshot>, opts: WatchOptions): Promise<TaskSnapshot> {
    if (this.#closed) return Promise.reject(new SchedulerClosedError());
    if (opts.signal?.aborted) return Promise.reject(opts.signal.reason);
    if (this.#watches.has(taskId)) return Promise.reject(new Error(`task ${taskId} is already watched`));
    return new Promise<TaskSnapshot>((resolve, reject) => {
      const first = nextPollElapsedMs(opts.expectedMs, undefined, this.#planFor(opts));
      const w: Watch = {
        taskId,
        poll,
        expectedMs: opts.expectedMs,
        startedAt: opts.startedAt,
        expectedAt: opts.startedAt + opts.expectedMs,
        dueAt: opts.startedAt + first,
        inflight: false,
        nudged: false,
        nudgedInflight: false,
        polls: 0,
        lastIntervalMs: 0,
        errors: 0,
        opts,
        resolve,
        reject,
        onAbort: undefined,
      };
      if (opts.signal) {
        const signal = opts.signal;
        w.onAbort = () => this.#finish(w, () => reject(signal.reason));
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      this.#watches.set(taskId, w);
      this.#schedulePump();
    });
  }

  #planFor(opts: WatchOptions): PollPlanParams {
    return opts.expectCallback ? this.#safetyNetPlan : this.#plan;
  }

  /** A hint that the task may be done (e.g. a RunBlob callback): poll it at the next free slot. */
  nudge(taskId: string): void {
    const w = this.#watches.get(taskId);
    if (!w) return;
    if (w.inflight) {
      // The answer in flight may predate the completion: poll again right after it.
      w.nudgedInflight = true;
      return;
    }
    w.nudged = true;
    w.dueAt = Math.min(w.dueAt, this.#now());
    this.#schedulePump();
  }

  /** Rejects every pending watch with SchedulerClosedError and stops all timers. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#cancelTimer();
    for (const w of [...this.#watches.values()]) this.#finish(w, () => w.reject(new SchedulerClosedError()));
  }

  #finish(w: Watch, settle: () => void): void {
    if (this.#watches.get(w.taskId) !== w) return;
    this.#watches.delete(w.taskId);
    if (w.onAbort) w.opts.signal?.removeEventListener('abort', w.onAbort);
    settle();
  }

  #cancelTimer(): void {
    if (this.#timer !== undefined) this.#clearTimer(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  #arm(at: number): void {
    if (this.#closed) return;
    if (this.#timer !== undefined && this.#timerAt <= at) return;
    this.#cancelTimer();
    this.#timerAt = at;
    this.#timer = this.#setTimer(
      () => {
        this.#timer = undefined;
        this.#timerAt = Infinity;
        this.#schedulePump();
      },
      Math.max(0, at - this.#now()),
    );
  }

  /** Coalesces pumps: watches registered in the same tick compete for the next slot together. */
  #schedulePump(): void {
    if (this.#pumpQueued) return;
    this.#pumpQueued = true;
    queueMicrotask(() => {
      this.#pumpQueued = false;
      this.#pump();
    });
  }

  /** Launches due polls while slots and budget allow, then arms the timer for the next event. */
  #pump(): void {
    if (this.#closed) return;
    const now = this.#now();
    while (this.#inflight < this.#maxInFlight) {
      let best: Watch | undefined;
      for (const w of this.#watches.values()) {
        if (w.inflight || w.dueAt > now) continue;
        if (!best || this.#before(w, best)) best = w;
      }
      if (!best) break;
      if (this.#budget.available() <= 0 && this.#budget.waiting('poll') > 0) {
        // Budget binds: keep one poll queued at the gate (so creates cannot starve polls) and
        // pick the next one when a token frees, so the choice is made when it can be used.
        this.#arm(now + Math.max(1, this.#budget.msUntilAvailable()));
        return;
      }
      this.#launch(best);
    }
    if (this.#inflight >= this.#maxInFlight) return; // a finishing poll pumps again
    let next = Infinity;
    for (const w of this.#watches.values()) if (!w.inflight && w.dueAt < next) next = w.dueAt;
    if (next < Infinity) this.#arm(next);
  }

  /** Priority when several tasks are due: nudged first, then earliest expected completion. */
  #before(a: Watch, b: Watch): boolean {
    if (a.nudged !== b.nudged) return a.nudged;
    return a.expectedAt < b.expectedAt;
  }

  #launch(w: Watch): void {
    w.inflight = true;
    w.nudged = false;
    w.polls++;
    this.#inflight++;
    let settled: Promise<TaskSnapshot>;
    try {
      settled = w.poll();
    } catch (err) {
      settled = Promise.reject(err);
    }
    settled.then(
      (snap) => this.#onSnapshot(w, snap),
      (err: unknown) => this.#onError(w, err),
    ).finally(() => {
      this.#inflight--;
      w.inflight = false;
      this.#schedulePump();
    });
  }

  #onSnapshot(w: Watch, snap: TaskSnapshot): void {
    if (this.#watches.get(w.taskId) !== w) return; // aborted or closed meanwhile
    try {
      w.opts.onSnapshot?.(snap);
    } catch (err) {
      this.#log?.warn({ err, taskId: w.taskId }, 'onSnapshot threw');
    }
    if (TERMINAL_TASK_STATUSES.has(snap.status)) {
      this.#finish(w, () => w.resolve(snap));
      return;
    }
    w.errors = 0;
    const now = this.#now();
    const elapsedMs = now - w.startedAt;
    const nextElapsed = nextPollElapsedMs(w.expectedMs, { elapsedMs, intervalMs: w.lastIntervalMs }, this.#planFor(w.opts));
    w.lastIntervalMs = nextElapsed - elapsedMs;
    w.dueAt = w.startedAt + nextElapsed;
    if (w.nudgedInflight) {
      w.nudgedInflight = false;
      w.nudged = true;
      w.dueAt = now;
    }
  }

  #onError(w: Watch, err: unknown): void {
    if (this.#watches.get(w.taskId) !== w) return;
    if (err instanceof ProviderError && !err.retryable) {
      this.#finish(w, () => w.reject(err));
      return;
    }
    if (err instanceof RateLimitedError) {
      this.#budget.pauseFor(err.retryAfterS !== undefined ? err.retryAfterS * 1000 : this.#rateLimitPauseMs);
    }
    w.errors++;
    const ceiling = Math.min(this.#maxErrorBackoffMs, this.#errorBackoffMs * 2 ** (w.errors - 1));
    // Half fixed, half jitter: never a zero wait, and watchers that failed together spread out.
    const delay = Math.round(ceiling / 2 + (this.#random() * ceiling) / 2);
    w.dueAt = this.#now() + delay;
    w.nudgedInflight = false;
    this.#log?.warn({ err, taskId: w.taskId, errors: w.errors, retryInMs: delay }, 'task poll failed; will retry');
  }
}
