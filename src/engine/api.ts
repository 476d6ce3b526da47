/**
 * What platform adapters, commands and the CLI may ask of the engine. Implemented by Engine
 * (engine.ts). Adapters code against this interface only.
 */
import type { GovernanceApi } from './governance/api.ts';
import type { Deliverer, JobRecord } from './job.ts';
import type { ModelSpec, Resolution } from './models.ts';
import type { ImagineRequestInput, Platform, PlatformLocation, Requester } from './request.ts';

export interface QuotaView {
  exempt: boolean;
  /** Units per day. */
  limit: number;
  used: number;
  left: number;
  /** Epoch ms when the daily allowance resets (next UTC midnight). */
  resetsAt: number;
  /** Units one image costs at each resolution. */
  costs: Record<Resolution, number>;
}

export interface EngineApi {
  /** The configured models, in catalog order. */
  readonly models: readonly ModelSpec[];
  /** The model used when none is chosen. */
  readonly defaultModel: ModelSpec;

  /**
   * Servers' and workspaces' settings, each user's /settings, usage and the audit log
   * (src/engine/governance/). submit() applies them: a request a server's rules refuse is
   * rejected before anything is reserved or sent.
   */
  readonly governance: GovernanceApi;

  /**
   * Validates the request (shape, model capabilities, references), reserves quota, persists the
   * job (state queued) and starts it in the background. Resolves with the stored record once the
   * job is durable; rejects with a BotError (ValidationError, ReferenceError, QuotaExceededError,
   * SpendCapError…) whose userMessage says what to fix. Nothing is charged on rejection.
   */
  submit(request: ImagineRequestInput): Promise<JobRecord>;

  getJob(jobId: string): Promise<JobRecord | undefined>;

  /**
   * Asks to cancel a job, for `by` (the caller checked they may). The request is written to the
   * store and honoured by whichever process holds the job, now or after a restart: a task not
   * yet accepted by the provider is never sent and its units are refunded; one already accepted
   * is paid for at the provider, so its units stay charged and its image is not posted. The job
   * ends `canceled` and its deliverer shows that instead of images. Resolves with the job as it
   * was at the request; rejects with CANCEL_TOO_LATE when its result is already posted, or
   * JobNotFoundError.
   */
  cancel(jobId: string, by: Requester): Promise<JobRecord>;

  /** Merges `patch` into the job's platform location (e.g. the placeholder's message id) and persists it. */
  updateLocation(jobId: string, patch: PlatformLocation): Promise<void>;

  /** The requester's last jobs, newest first, at most `limit` (and at most 50 are kept). */
  history(requester: Requester, limit: number): Promise<JobRecord[]>;

  /** A user's allowance today. */
  quota(requester: Requester): Promise<QuotaView>;

  /**
   * True for the first caller of `key` within `ttlMs`, across every process on the store: for
   * inputs a platform may deliver more than once (Slack redelivers an event it thinks was lost).
   */
  claimOnce(key: string, ttlMs: number): Promise<boolean>;

  /**
   * Remembers that the platform message or thread `key` shows `jobId` (kept as long as job
   * records), so a reply there can find the job: Slack links a result's thread to its latest
   * result for "mention me in the thread to edit" without reading the thread's history.
   */
  linkJob(key: string, jobId: string): Promise<void>;
  /** The job last linked to `key`, if any. */
  linkedJob(key: string): Promise<string | undefined>;

  /** Registers the adapter that renders progress and delivers results for a platform. */
  setDeliverer(platform: Platform, deliverer: Deliverer): void;

  /** Picks up unfinished (and finished-but-undelivered) jobs from the store. Returns how many. */
  resume(): Promise<number>;

  /** Resolves when the job is terminal and delivered (or delivery gave up). */
  waitFor(jobId: string, signal?: AbortSignal): Promise<JobRecord>;

  /** Stops polling and timers; in-flight jobs stay in the store and resume on next start. */
  close(): Promise<void>;
}
