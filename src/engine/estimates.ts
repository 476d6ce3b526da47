/**
 * What the placeholder says about time (docs/architecture.md "How long: what the placeholder says"): how long a job waiting
 * for the provider's rate budget still waits, from the budget's own window (its refill rate), and
 * how long generating an image takes, learned from this process's recent jobs per model and
 * resolution (the documented typical times until there are some: EXPECTED_TASK_MS).
 */
import type { Resolution } from './models.ts';

/** The local window of a rate budget, as estimateWaitMs needs it. */
export interface BudgetWindow {
  now: number;
  /** Start times of the grants still inside the window, oldest first. */
  stamps: readonly number[];
  windowMs: number;
  /** Grants per window. */
  limit: number;
  /** No grant before this time (a 429 pause). */
  pausedUntil: number;
}

/**
 * Milliseconds until the `n`-th next token (1-based) is granted, if nobody else asks: the free
 * tokens go first, then each grant of the window frees one when it leaves it, then `limit` per
 * window. A floor, since other processes sharing the key may take tokens too.
 */
export function estimateWaitMs(w: BudgetWindow, n: number): number {
  const start = Math.max(w.now, w.pausedUntil);
  const live = w.stamps.filter((s) => s + w.windowMs > start);
  // When each next token comes: the free ones at once, then one as each grant leaves the window;
  // every grant then holds its slot for a window, so token m comes a window after token m − limit.
  const times: number[] = [];
  for (let i = live.length; i < w.limit; i++) times.push(start);
  for (const s of live) times.push(Math.max(s + w.windowMs, start));
  times.sort((a, b) => a - b);
  while (times.length < n) times.push(times[times.length - w.limit]! + w.windowMs);
  return Math.max(0, times[Math.max(0, n - 1)]! - w.now);
}

/** Durations kept per model and resolution: enough to follow a change, few enough to forget an old one. */
export const DURATION_SAMPLES = 20;

/** Recent generation times (create accepted → result ready), per model and resolution; the median is the estimate. */
export class DurationEstimates {
  readonly #samples = new Map<string, number[]>();
  readonly #fallback: (modelKey: string, resolution: Resolution) => number;

  constructor(fallback: (modelKey: string, resolution: Resolution) => number) {
    this.#fallback = fallback;
  }

  record(modelKey: string, resolution: Resolution, ms: number): void {
    if (!(ms > 0)) return;
    const key = `${modelKey}|${resolution}`;
    const list = this.#samples.get(key) ?? [];
    list.push(ms);
    if (list.length > DURATION_SAMPLES) list.shift();
    this.#samples.set(key, list);
  }

  /** The median of the recent durations, or the documented default when there are none. */
  expectedMs(modelKey: string, resolution: Resolution): number {
    const list = this.#samples.get(`${modelKey}|${resolution}`);
    if (!list || list.length === 0) return this.#fallback(modelKey, resolution);
    const sorted = [...list].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 === 1 ? sorted[mid]! : Math.round((sorted[mid - 1]! + sorted[mid]!) / 2);
  }
}
