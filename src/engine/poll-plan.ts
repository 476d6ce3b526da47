/**
 * When to poll a running task (pure maths; poll-scheduler.ts does the polling). Its duration is
 * modelled as log-normal around `expectedMs` (spread `spread`, the σ of the log). The first poll waits until the task has a `firstHitChance`
 * probability of being done (never before `firstPollFraction` × expectedMs); each next poll waits
 * until the task has a `hitChance` probability of having finished since the previous one, clamped
 * to [minIntervalMs, maxIntervalMs]: polls bunch up around the expected completion, where a poll
 * pays off, and are sparse before it. Once the model says the task should long be done
 * (probability ≥ `tailFrom`), the interval backs off geometrically (×`tailGrowth`) up to
 * `tailCapMs`.
 */

/** Standard normal CDF (Abramowitz–Stegun 7.1.26, |error| < 1.5e-7). */
function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return z >= 0 ? 0.5 * (1 + y) : 0.5 * (1 - y);
}

/** Inverse standard normal CDF (Acklam's rational approximation). */
function normalQuantile(p: number): number {
  const q0 = Math.min(Math.max(p, 1e-9), 1 - 1e-9);
  const a = [-39.69683028665376, 220.9460984245205, -275.928510446969, 138.357751867269, -30.66479806614716, 2.506628277459239];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const [a0, a1, a2, a3, a4, a5] = a as [number, number, number, number, number, number];
  const [b0, b1, b2, b3, b4] = b as [number, number, number, number, number];
  const [c0, c1, c2, c3, c4, c5] = c as [number, number, number, number, number, number];
  const [d0, d1, d2, d3] = d as [number, number, number, number];
  if (q0 < 0.02425) {
    const q = Math.sqrt(-2 * Math.log(q0));
    return (((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) / ((((d0 * q + d1) * q + d2) * q + d3) * q + 1);
  }
  if (q0 > 1 - 0.02425) {
    const q = Math.sqrt(-2 * Math.log(1 - q0));
    return -(((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) / ((((d0 * q + d1) * q + d2) * q + d3) * q + 1);
  }
  const q = q0 - 0.5;
  const r = q * q;
  return ((((((a0 * r + a1) * r + a2) * r + a3) * r + a4) * r + a5) * q) / (((((b0 * r + b1) * r + b2) * r + b3) * r + b4) * r + 1);
}

export interface PollPlanParams {
  spread: number;
  firstHitChance: number;
  hitChance: number;
  firstPollFraction: number;
  minIntervalMs: number;
  maxIntervalMs: number;
  tailFrom: number;
  tailGrowth: number;
  tailCapMs: number;
}

export const DEFAULT_POLL_PLAN: PollPlanParams = {
  spread: 0.25,
  firstHitChance: 0.2,
  hitChance: 0.3,
  firstPollFraction: 0.5,
  minIntervalMs: 500,
  maxIntervalMs: 2_000,
  tailFrom: 0.9,
  tailGrowth: 1.5,
  tailCapMs: 5_000,
};

/**
 * The plan for a task whose provider calls back when it ends (RunBlob's `callback_url`,
 * docs/providers.md "Callback"): the callback nudges a poll at once, so polls are only the safety
 * net for a callback that never comes. The first waits until 1.5 × the expected time; a poll that
 * finds the task still running before its expected end (after an early nudge) is followed by the
 * next one 2–4 × maxIntervalMs later (4–8 s by default); from then on the gaps grow up to
 * 6 × tailCapMs (30 s). 1,000 RunBlob tasks held for an hour cost about 200 polls/s with the
 * normal plan, about 35 with this one, each taking main-thread CPU and the key's request budget
 * from new jobs' creates (`npm run bench -- jobs`, "main-thread CPU while they wait"). Used only
 * where the callback reaches the process running the job (jobs/tasks.ts watchTask).
 */
export function callbackSafetyNetPlan(p: PollPlanParams): PollPlanParams {
  return {
    ...p,
    firstPollFraction: 3 * p.firstPollFraction,
    minIntervalMs: 2 * p.maxIntervalMs,
    maxIntervalMs: 4 * p.maxIntervalMs,
    tailCapMs: 6 * p.tailCapMs,
  };
}

/**
 * The elapsed time (ms since start) of the next poll, given the elapsed time of the previous
 * answer (undefined before the first poll) and the previous interval. Pure: exported for tests.
 */
export function nextPollElapsedMs(
  expectedMs: number,
  last: { elapsedMs: number; intervalMs: number } | undefined,
  p: PollPlanParams = DEFAULT_POLL_PLAN,
): number {
  const expected = Math.max(1, expectedMs);
  const timeAt = (prob: number) => expected * Math.exp(p.spread * normalQuantile(prob));
  const doneBy = (elapsed: number) => (elapsed <= 0 ? 0 : normalCdf(Math.log(elapsed / expected) / p.spread));
  if (!last) return Math.max(p.firstPollFraction * expected, timeAt(p.firstHitChance));
  const done = doneBy(last.elapsedMs);
  let interval: number;
  if (done >= p.tailFrom) {
    interval = Math.min(p.tailCapMs, Math.max(last.intervalMs, p.minIntervalMs) * p.tailGrowth);
  } else {
    const target = timeAt(done + p.hitChance * (1 - done));
    interval = Math.min(p.maxIntervalMs, Math.max(p.minIntervalMs, target - last.elapsedMs));
  }
  return last.elapsedMs + interval;
}
