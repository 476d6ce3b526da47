/**
 * The persisted job record and its state machine. A job is written to the store at every
 * state change, so a process killed at any point can resume it (engine.resume()).
 */
import type { ScopeKey } from './governance/api.ts';
import type { ImagineRequest, Platform } from './request.ts';
import type { TaskStatus } from '../providers/types.ts';
import type { ImageMime } from './image-sniff.ts';

export const JOB_STATES = ['queued', 'submitted', 'running', 'succeeded', 'failed', 'canceled'] as const;
export type JobState = (typeof JOB_STATES)[number];
export const TERMINAL_JOB_STATES: ReadonlySet<JobState> = new Set(['succeeded', 'failed', 'canceled']);
export const isTerminalJobState = (s: JobState): boolean => TERMINAL_JOB_STATES.has(s);

/**
 * A copy of a job for code outside the run (a deliverer, a caller of the engine): the run keeps
 * changing its own. A record holds only what JSON holds (the store keeps it as JSON text), so a
 * JSON round trip copies it whole, for 0.55-0.7 of structuredClone's cost with a one-image job's
 * 1.3 KB (7.7-8.2 µs against 11-16 µs with cold caches; a throwaway script). About six copies for
 * a one-image job (its submission, each progress state, its delivery), more with the elapsed-time
 * ticks a platform shows, delivery retries and getJob calls.
 */
export function snapshotJob(job: JobRecord): JobRecord {
  return JSON.parse(JSON.stringify(job)) as JobRecord;
}

/** A stored output image. */
export interface JobImage {
  /** Path on local disk (under DATA_DIR/images/<jobId>/). */
  path: string;
  /** The provider's URL for the original (CDN, lifetime undocumented). */
  sourceUrl: string;
  mime: ImageMime;
  bytes: number;
  width: number;
  height: number;
}

/** One provider task = one image. */
export interface JobTask {
  index: number;
  /** 'unsubmitted' until the provider has accepted the create call. */
  status: TaskStatus | 'unsubmitted';
  taskId?: string;
  submittedAt?: number;
  completedAt?: number;
  /** Provider-reported cost in USD, when known. */
  costUsd?: number;
  outputUrl?: string;
  image?: JobImage;
  error?: JobError;
}

export interface JobError {
  /** Stable code (provider code like MODERATION_FAILED, or an engine code like DEADLINE_EXCEEDED). */
  code: string;
  /** The sentence shown to the chat user. */
  userMessage: string;
  /** Technical detail for logs/operators. */
  detail?: string;
}

export interface JobQuota {
  /** The quota bucket key (platform:userId). */
  userKey: string;
  /** The day bucket (UTC yyyy-mm-dd) the units were reserved in. */
  day: string;
  /** Units reserved at submission (0 for exempt users). */
  reserved: number;
  /** Units given back so far (failed tasks). reserved - refunded is what the user paid. */
  refunded: number;
  /** Set once the final settlement (commit/refund) is done: guarantees "charged once" across resumes. */
  settled: boolean;
  /** USD reserved against the global spend cap (estimate, corrected by reported costs). */
  spendReservedUsd: number;
  /** The server whose own spend counter the same USD was reserved on (ServerSettings.spendCapUsd); settled with it. */
  spendScope?: ScopeKey;
}

export interface JobRecord {
  id: string;
  request: ImagineRequest;
  state: JobState;
  createdAt: number;
  updatedAt: number;
  /** Epoch ms after which the job fails with DEADLINE_EXCEEDED. */
  deadlineAt: number;
  startedAt?: number;
  finishedAt?: number;
  tasks: JobTask[];
  quota: JobQuota;
  /** Set when the whole job failed. Partial success keeps state 'succeeded' with per-task errors. */
  error?: JobError;
  /** Set once the platform adapter has delivered the terminal result (see Deliverer). */
  deliveredAt?: number;
  /** Number of delivery attempts that failed (the engine retries with backoff, then gives up). */
  deliveryAttempts?: number;
}

export type ProgressPhase = 'queued' | 'generating' | 'downloading' | 'done';

export interface ProgressEvent {
  jobId: string;
  state: JobState;
  phase: ProgressPhase;
  /** Since job creation. */
  elapsedMs: number;
  /** Tasks that reached a terminal state / all tasks. */
  done: number;
  total: number;
  /** True when what the placeholder shows changed (phase, images done, place in the queue): adapters edit at once; false for elapsed-time ticks. */
  changed: boolean;
  /** Waiting for the provider's rate budget: other jobs' creates before this one's, and the estimated wait. */
  queue?: { ahead: number; etaMs: number };
  /** Generating: since when (the first task accepted), and how long this model and size usually take. */
  generating?: { since: number; expectedMs: number };
}

/**
 * What a platform adapter gives the engine so results reach users even after a restart.
 * The engine calls `progress` on every event, and `deliver` once the job is terminal, also for
 * jobs resumed at start; it marks the job delivered when `deliver` resolves, and retries a few
 * times with backoff when it throws.
 */
export interface Deliverer {
  progress(job: JobRecord, event: ProgressEvent): void | Promise<void>;
  /**
   * Whether an elapsed-time tick (a progress event with `changed: false`) would be shown now.
   * When false, the engine skips the tick before building it (no copy of the job): with
   * hundreds of jobs waiting, most ticks fall within the adapter's own throttle. Absent: every
   * tick is sent.
   */
  wantsTick?(jobId: string): boolean;
  deliver(job: JobRecord): Promise<void>;
  /**
   * Whether `deliver` takes a result's bytes from the app's RecentResults (recent-results.ts)
   * rather than reading its file: the engine keeps a downloaded body in memory only for the jobs
   * of a deliverer that does. Absent: it does.
   */
  readonly takesKeptResults?: boolean;
  /**
   * Called once when the engine stops retrying `deliver` (it tries again at the next start): the
   * requester must not be left looking at a placeholder that never moves. `err` is the last
   * delivery failure. Best effort; its own failures are logged.
   */
  undeliverable?(job: JobRecord, err: unknown): Promise<void>;
  /**
   * The job's run in this process has ended (delivered, given up, stopped by a restart, or its
   * lease taken by another process, which delivers it now): drop whatever is kept for it, such as
   * a progress edit still waiting. Called once per run, whatever its end.
   */
  forget?(jobId: string): void;
  /**
   * Posts `text` (mentions as `<@id>`, `<#id>`, `<@&id>`) in `channelId` of the platform: a
   * server's log channel (docs/governance.md). Best effort; its own failures are logged.
   */
  notify?(channelId: string, text: string): Promise<void>;
}

export type DelivererRegistry = Partial<Record<Platform, Deliverer>>;
