/**
 * What the parts of the engine share: the engine's settings and collaborators (JobContext), the
 * timing knobs with their production values, and a job this process is running (Run).
 * See docs/architecture.md for how the parts fit together.
 */
import type { Dispatcher } from 'undici';
import type { Logger } from '../../log.ts';
import type { Metrics } from '../../metrics.ts';
import type { ProviderReference } from '../../providers/types.ts';
import type { JobRecord } from '../job.ts';
import { LeaseLostError } from '../job-errors.ts';
import type { Lane, Lanes } from '../lanes.ts';
import type { ModelSpec, Resolution } from '../models.ts';
import type { ProviderCallbacks } from '../provider-callbacks.ts';
import { DAY_MS, type Quotas } from '../quota.ts';
import type { ReferenceHost } from '../reference-host.ts';
import type { DurationEstimates } from '../estimates.ts';
import type { UsageLedger } from '../governance/usage.ts';
import type { Deliveries } from './delivery.ts';
import type { JobRecords } from './records.ts';
import type { RecentResults } from '../recent-results.ts';
import type { DownloadResultFn } from '../results.ts';

/** Callback tokens only matter while a task can still complete (the deadline), plus a margin for resumes. */
export const CALLBACK_TOKEN_TTL_MS = 2 * DAY_MS;
/**
 * How often a running engine sweeps for unfinished jobs nobody holds (a lease that expired while
 * its process lives). A dead or stopping process's jobs are found sooner, by the heartbeat. 0 turns it off.
 */
export const TAKEOVER_INTERVAL_MS = 60_000;
/**
 * Each process writes its heartbeat this often, and looks at its peers' heartbeats just after. A
 * process's jobs are taken over at most HEARTBEAT_TTL_MS + HEARTBEAT_INTERVAL_MS (8 s) after it
 * died (docs/architecture.md "Scaling out").
 */
export const HEARTBEAT_INTERVAL_MS = 2_000;
/** A heartbeat lives this long; a process that could not renew it for TTL − interval stops its runs. */
export const HEARTBEAT_TTL_MS = 6_000;
/** Elapsed-time progress ticks (adapters throttle their edits further). */
export const PROGRESS_TICK_MS = 2_000;
/**
 * A job's lease; renewed every third of it while the job runs. It names the process: a holder
 * whose heartbeat is gone loses it at once, so this only bounds how long a lease outlives a run
 * that ended without releasing it.
 */
export const LEASE_TTL_MS = 30_000;
/** Waits between delivery attempts; after the last one the job waits for the next start. */
export const DELIVERY_RETRY_DELAYS_MS: readonly number[] = [1_000, 5_000, 15_000];
/**
 * A resumed job whose deadline has passed still gets this long, so a task that finished while
 * the bot was down is not thrown away unpolled (many resumed Runbase jobs share 20 polls / 10 s).
 */
export const RESUME_GRACE_MS = 60_000;
/** First wait after a create refused with 429 RATE_LIMITED beyond the client's own retries; doubles up to 8×. */
export const CREATE_RATE_LIMITED_BACKOFF_MS = 1_000;
/** Typical generation time by resolution ("7–30 s", docs/providers.md); the poll plan centres on it. */
export const EXPECTED_TASK_MS: Readonly<Record<Resolution, number>> = { '1K': 12_000, '2K': 18_000, '4K': 25_000 };

/** Waits before retrying: firstDelayMs, doubling up to maxDelayMs, no retry after giveUpMs in all. */
export interface RetryTiming {
  firstDelayMs: number;
  maxDelayMs: number;
  giveUpMs: number;
}
/**
 * A run's job-record write that failed (Redis restarting, a dropped connection) is tried again on
 * this plan; a Redis client queues what is sent while it reconnects, so a retry lands as soon as
 * the store is back.
 */
export const RECORD_WRITE_RETRY: RetryTiming = { firstDelayMs: 100, maxDelayMs: 2_000, giveUpMs: 60_000 };

/** The timing the job parts run with (EngineTiming with the defaults applied). */
export interface JobTiming {
  deadlineMs: number;
  progressTickMs: number;
  deliveryRetryDelaysMs: readonly number[];
  leaseTtlMs: number;
  resumeGraceMs: number;
  createRateLimitedBackoffMs: number;
  recordWriteRetry: RetryTiming;
  expectedMs: (model: ModelSpec, resolution: Resolution) => number;
}

/** The production timing, with what `overrides` (tests, benches) set instead; `deadlineMs` unless overridden. */
export function jobTimingOf(overrides: Partial<JobTiming>, deadlineMs: number): JobTiming {
  return {
    deadlineMs: overrides.deadlineMs ?? deadlineMs,
    progressTickMs: overrides.progressTickMs ?? PROGRESS_TICK_MS,
    deliveryRetryDelaysMs: overrides.deliveryRetryDelaysMs ?? DELIVERY_RETRY_DELAYS_MS,
    leaseTtlMs: overrides.leaseTtlMs ?? LEASE_TTL_MS,
    resumeGraceMs: overrides.resumeGraceMs ?? RESUME_GRACE_MS,
    createRateLimitedBackoffMs: overrides.createRateLimitedBackoffMs ?? CREATE_RATE_LIMITED_BACKOFF_MS,
    recordWriteRetry: overrides.recordWriteRetry ?? RECORD_WRITE_RETRY,
    expectedMs: overrides.expectedMs ?? ((_m, resolution) => EXPECTED_TASK_MS[resolution]),
  };
}

export interface JobContext {
  quotas: Quotas;
  log: Logger;
  now: () => number;
  timing: JobTiming;
  records: JobRecords;
  lanes: Lanes;
  deliveries: Deliveries;
  callbacks: ProviderCallbacks;
  /** DATA_DIR: references under refs/<jobId>, results under images/<jobId>. */
  dataDir: string;
  /** PUBLIC_URL, for provider callbacks. */
  publicUrl: string | undefined;
  /**
   * Whether a provider's callback for a job run here reaches this process: it serves the callback
   * route and no live peer shares the store (PUBLIC_URL then reaches one of them, maybe another).
   */
  callbacksReachThisProcess: () => boolean;
  /** Serves local references to URL-only providers; undefined when nobody serves them. */
  referenceHost: ReferenceHost | undefined;
  /** FETCH_ALLOW_HOSTS. */
  fetchAllowHosts: readonly string[];
  /** Downloads a result (EngineOptions.downloadResult: on the results thread, or in this one). */
  downloadResult: DownloadResultFn;
  /** Where a result's bytes just written are handed to the deliverers; undefined: not kept. */
  recentResults?: RecentResults | undefined;
  /** For user-given reference URLs (SSRF-guarded). */
  referenceDispatcher: Dispatcher;
  /** The app's metrics (src/metrics.ts); undefined in tests that do not look. */
  metrics?: Metrics | undefined;
  /** Recent generation times per model and resolution, for the placeholder's estimate. */
  durations?: DurationEstimates | undefined;
  /** Per-server usage (governance/usage.ts), recorded at each job's settlement; undefined: not recorded. */
  usage?: UsageLedger | undefined;
}

/** A job this process is running (or delivering). */
export interface Run {
  job: JobRecord;
  model: ModelSpec | undefined;
  lane: Lane | undefined;
  log: Logger;
  /** Aborted by close() or a lost lease: the job stops where it is and stays in the store. */
  stop: AbortController;
  /**
   * Aborts a create already on the wire, whose answer (the task id) is then lost: a lost lease,
   * or close() once it gives up waiting. close() itself (`stop`) lets that create finish, so its
   * task id is recorded and the next start polls the task instead of failing it as
   * SUBMISSION_UNKNOWN (a create cut off mid-way may have made, and charged, the task).
   */
  abandon: AbortController;
  /** Another process took the lease: this run ends without releasing it. */
  leaseLost: boolean;
  /** The run ended and is letting go of its lease: renewals leave it alone (or they would take it back). */
  releasing: boolean;
  /** Aborted at the job's deadline: tasks still pending fail with DEADLINE_EXCEEDED. */
  deadline: AbortController;
  /**
   * Aborted when a cancel request is seen (JobRecords.cancelRequest): tasks not yet sent are
   * never sent, tasks the provider accepted are no longer watched; the job ends `canceled`.
   */
  cancel: AbortController;
  signal: AbortSignal;
  /** Serialises writes of this job's record so an older snapshot never lands after a newer one. */
  writes: Promise<void>;
  downloading: number;
  lastProgressKey: string;
  /**
   * Tasks (by index) whose provider callback came in: a callback may come before the create's
   * answer (a fast task), or before its watch began; the watch then polls at once instead of
   * waiting for the poll plan.
   */
  calledBack: Set<number>;
  /** Tasks (by index) created without a callback URL (its token could not be stored): polled on the normal plan. */
  noCallback: Set<number>;
  /** Resumed after a restart or taken over: callbacks sent meanwhile went to a process that is gone. */
  resumed: boolean;
  /** References as the provider receives them; computed at submit, or again on resume. */
  providerRefs: ProviderReference[] | undefined;
  timers: Array<ReturnType<typeof setTimeout>>;
  done: Promise<void>;
}

/** A job's logger: every line names the job, its provider and its model. */
export function jobLogger(log: Logger, jobId: string, model: ModelSpec | undefined): Logger {
  return log.child({ jobId, provider: model?.provider, model: model?.key });
}

/**
 * Another process holds the job now, or may: the run stops where it is, a create on the wire
 * included, writes nothing more, and ends without releasing the lease.
 */
export function loseLease(run: Run, why: string): void {
  if (run.leaseLost) return;
  run.leaseLost = true;
  run.log.error(why);
  const lost = new LeaseLostError();
  run.stop.abort(lost);
  run.abandon.abort(lost);
}
