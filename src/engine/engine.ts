/**
 * The engine owns a job from request to delivered result (DESIGN.md "The flow of one job"):
 * validation against the model, reference preparation, quota and spend reservation, the job
 * record persisted at every state change, one provider task per image created in parallel,
 * budgeted waiting (one RateBudget + PollScheduler per API key, RunBlob callbacks as hints),
 * result downloads, settlement (refunds) exactly once, progress and delivery through the
 * platform's Deliverer, and resuming unfinished jobs after a restart.
 *
 * Durability rules (issue 2, items 7 and 9):
 * - A task's provider id is persisted right after the create answer; a task that has one is
 *   never created again (that would charge twice), only polled.
 * - Before a create request goes out, `submittedAt` is persisted while the task is still
 *   'unsubmitted'. A resumed task in that state may or may not exist at the provider: it is
 *   failed with SUBMISSION_UNKNOWN and refunded (the one gap a crash can leave).
 * - Settlement (refund of failed images, spend correction) is applied exactly once: each of its
 *   two counter changes is one atomic store step together with its "done" guard (Store.addOnce),
 *   so a process that dies at any point settles again on resume without losing or repeating one.
 * - A job leaves the unfinished set only when terminal AND delivered.
 * - Each running job is leased in the store (`lease:job:<id>`), renewed while it runs, so
 *   processes sharing Redis never run the same job twice.
 */
import { rename, rm } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type { Dispatcher } from 'undici';
import { ConfigError, type Config } from '../config.ts';
import type { Logger } from '../log.ts';
import { MalformedResponseError, RateLimitedError } from '../providers/errors.ts';
import { taskFailedError } from '../providers/error-parsing.ts';
import { abortableSleep } from '../providers/retry.ts';
import type { ProviderClient, ProviderReference, RequestGate, TaskInput } from '../providers/types.ts';
import type { HttpServer } from '../platforms/http/server.ts';
import type { EngineApi, QuotaView } from './api.ts';
import { DeadlineExceededError, JobNotFoundError, ReferenceError, ResultDownloadError } from './errors.ts';
import { newCallbackToken, newJobId } from './ids.ts';
import { EXTENSION_BY_MIME } from './image-sniff.ts';
import {
  isTerminalJobState,
  type Deliverer,
  type DelivererRegistry,
  type JobRecord,
  type JobTask,
  type ProgressEvent,
  type ProgressPhase,
} from './job.ts';
import {
  EngineClosedError,
  LeaseLostError,
  ProviderUnavailableError,
  SubmissionUnknownError,
  toJobError,
} from './job-errors.ts';
import { configuredModels, findModel, MODEL_CATALOG, type ModelSpec, type ProviderName, type Resolution } from './models.ts';
import { createGuardedDispatcher } from './net-guard.ts';
import { PollScheduler, type PollSchedulerOptions } from './poll-scheduler.ts';
import { DAY_MS, type Quotas } from './quota.ts';
import { RateBudget, RUNBASE_REQUESTS_PER_WINDOW, RUNBASE_WINDOW_MS, type RateBudgetOptions } from './rate-budget.ts';
import { ReferenceHost } from './reference-host.ts';
import { fetchReferences, toProviderReferences, type PreparedReference } from './references.ts';
import type { ImagineRequestInput, Platform, PlatformLocation, Requester } from './request.ts';
import { downloadResult } from './results.ts';
import { mountRunblobCallbacks, registerCallbackToken, runblobCallbackUrl, type CallbackTarget } from './runblob-callbacks.ts';
import type { Store } from './store.ts';
import { parseRequest, resolveModel, validateAgainstModel } from './validate.ts';

/** Job records outlive the job so that buttons keep working for weeks (DESIGN.md "Buttons are durable"). */
export const JOB_TTL_MS = 60 * DAY_MS;
/** The store set of jobs that are not yet terminal-and-delivered; resume() walks it. */
export const UNFINISHED_JOBS_KEY = 'jobs:unfinished';
export const jobKey = (jobId: string): string => `job:${jobId}`;
export const jobLeaseKey = (jobId: string): string => `lease:job:${jobId}`;
const jobReferencesKey = (jobId: string) => `job-refs:${jobId}`;
/** Names a job's settlement in the store's once-only guards (Quotas.refundOnce / adjustSpendOnce). */
const jobSettlementId = (jobId: string) => `job:${jobId}`;

/** Callback tokens only matter while a task can still complete (the deadline), plus a margin for resumes. */
export const CALLBACK_TOKEN_TTL_MS = 2 * DAY_MS;
/** How often a running engine looks for jobs whose process died (their lease expired). 0 turns it off. */
export const TAKEOVER_INTERVAL_MS = 60_000;
/** Elapsed-time progress ticks (adapters throttle their edits further). */
export const PROGRESS_TICK_MS = 2_000;
/** A job's lease; renewed every third of it while the job runs. */
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
/** RunBlob documents no rate limit: a generous budget that still stops a runaway loop. */
export const RUNBLOB_REQUESTS_PER_WINDOW = 50;
export const RUNBLOB_WINDOW_MS = 1_000;
/** Typical generation time by resolution ("7–30 s", reference/providers.md); the poll plan centres on it. */
export const EXPECTED_TASK_MS: Readonly<Record<Resolution, number>> = { '1K': 12_000, '2K': 18_000, '4K': 25_000 };

/** Knobs for tests and benches (time scaled down); production uses the defaults. */
export interface EngineTiming {
  /** Overrides JOB_DEADLINE_SECONDS (whose minimum is 10 s). */
  deadlineMs?: number;
  progressTickMs?: number;
  deliveryRetryDelaysMs?: readonly number[];
  leaseTtlMs?: number;
  resumeGraceMs?: number;
  createRateLimitedBackoffMs?: number;
  /** 0 turns the periodic takeover of dead processes' jobs off. */
  takeoverIntervalMs?: number;
  expectedMs?: (model: ModelSpec, resolution: Resolution) => number;
  /** Per provider: the provider's limit as RateBudgetOptions (reserve/padding, shared buckets' k and m included). */
  rateLimits?: Partial<Record<ProviderName, Omit<RateBudgetOptions, 'now' | 'shared'>>>;
  /** Poll plan overrides for every scheduler. */
  scheduler?: Omit<PollSchedulerOptions, 'budget' | 'log' | 'now'>;
}

export interface EngineOptions {
  config: Config;
  store: Store;
  quotas: Quotas;
  providers: readonly ProviderClient[];
  log: Logger;
  /** Where RunBlob callbacks and short-lived reference URLs are served. */
  http?: HttpServer;
  now?: () => number;
  /** For result downloads (tests: a fake's dispatcher); default undici's global one. */
  dispatcher?: Dispatcher;
  /** For user-given reference URLs; default an SSRF-guarded dispatcher honouring FETCH_ALLOW_HOSTS. */
  referenceDispatcher?: Dispatcher;
  /** This process's identity in job leases; default random. */
  processId?: string;
  timing?: EngineTiming;
}

/** The provider side of one API key: its client, its budget and its scheduler. */
interface Lane {
  client: ProviderClient;
  budget: RateBudget;
  scheduler: PollScheduler;
  gate: RequestGate;
}

/** A job this process is running (or delivering). */
interface Run {
  job: JobRecord;
  model: ModelSpec | undefined;
  lane: Lane | undefined;
  log: Logger;
  /** Aborted by close() or a lost lease: the job stops where it is and stays in the store. */
  stop: AbortController;
  /** Aborted at the job's deadline: tasks still pending fail with DEADLINE_EXCEEDED. */
  deadline: AbortController;
  signal: AbortSignal;
  /** Serialises writes of this job's record so an older snapshot never lands after a newer one. */
  writes: Promise<void>;
  downloading: number;
  lastProgressKey: string;
  /** References as the provider receives them; computed at submit, or again on resume. */
  providerRefs: ProviderReference[] | undefined;
  timers: Array<ReturnType<typeof setTimeout>>;
  done: Promise<void>;
}

const sleep = abortableSleep;

const isImageDone = (t: JobTask) => t.status === 'failed' || (t.status === 'succeeded' && t.image !== undefined);

export class Engine implements EngineApi {
  readonly models: readonly ModelSpec[];
  readonly defaultModel: ModelSpec;
  readonly processId: string;

  readonly #config: Config;
  readonly #store: Store;
  readonly #quotas: Quotas;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #dispatcher: Dispatcher | undefined;
  readonly #referenceDispatcher: Dispatcher;
  readonly #ownsReferenceDispatcher: boolean;
  readonly #referenceHost: ReferenceHost | undefined;
  readonly #publicUrl: string | undefined;
  readonly #lanes = new Map<ProviderName, Lane>();
  readonly #deliverers: DelivererRegistry = {};
  readonly #runs = new Map<string, Run>();
  readonly #deadlineMs: number;
  readonly #tickMs: number;
  readonly #deliveryDelaysMs: readonly number[];
  readonly #leaseTtlMs: number;
  readonly #resumeGraceMs: number;
  readonly #createBackoffMs: number;
  readonly #expectedMs: (model: ModelSpec, resolution: Resolution) => number;
  #closed = false;
  #takeoverTimer: ReturnType<typeof setInterval> | undefined;

  constructor(opts: EngineOptions) {
    const { config } = opts;
    this.#config = config;
    this.#store = opts.store;
    this.#quotas = opts.quotas;
    this.#log = opts.log;
    this.#now = opts.now ?? Date.now;
    this.#dispatcher = opts.dispatcher;
    this.processId = opts.processId ?? `engine-${newJobId()}`;
    const timing = opts.timing ?? {};
    this.#deadlineMs = timing.deadlineMs ?? config.JOB_DEADLINE_SECONDS * 1000;
    this.#tickMs = timing.progressTickMs ?? PROGRESS_TICK_MS;
    this.#deliveryDelaysMs = timing.deliveryRetryDelaysMs ?? DELIVERY_RETRY_DELAYS_MS;
    this.#leaseTtlMs = timing.leaseTtlMs ?? LEASE_TTL_MS;
    this.#resumeGraceMs = timing.resumeGraceMs ?? RESUME_GRACE_MS;
    this.#createBackoffMs = timing.createRateLimitedBackoffMs ?? CREATE_RATE_LIMITED_BACKOFF_MS;
    this.#expectedMs = timing.expectedMs ?? ((_m, resolution) => EXPECTED_TASK_MS[resolution]);

    this.models = configuredModels(new Set(opts.providers.map((p) => p.name)));
    const first = this.models[0];
    if (!first) throw new ConfigError(['RUNBASE_API_KEY / RUNBLOB_API_KEY: set at least one image provider key']);
    if (config.DEFAULT_MODEL) {
      const chosen = findModel(this.models, config.DEFAULT_MODEL);
      if (!chosen) {
        throw new ConfigError([
          `DEFAULT_MODEL: "${config.DEFAULT_MODEL}" is not one of the configured models (${this.models.map((m) => m.key).join(', ')})`,
        ]);
      }
      this.defaultModel = chosen;
    } else {
      this.defaultModel = first;
    }

    const defaultLimits: Record<ProviderName, Omit<RateBudgetOptions, 'now' | 'shared'>> = {
      runbase: { requests: RUNBASE_REQUESTS_PER_WINDOW, windowMs: RUNBASE_WINDOW_MS },
      runblob: { requests: RUNBLOB_REQUESTS_PER_WINDOW, windowMs: RUNBLOB_WINDOW_MS },
    };
    // One budget and one scheduler per API key (the bot runs one key per provider).
    const byKey = new Map<string, Lane>();
    for (const client of opts.providers) {
      let lane = byKey.get(client.keyId);
      if (!lane) {
        const budget = new RateBudget({
          ...(timing.rateLimits?.[client.name] ?? defaultLimits[client.name]),
          now: this.#now,
          // Runbase's limit is per key, whoever sends: every process on this store (other bot
          // processes, `npm run imagine`, a restarted process and its predecessor's last grants)
          // takes its tokens from the same store buckets, so their sum stays within 20 / 10 s.
          ...(client.name === 'runbase' ? { shared: sharedBudget(opts.store, client.keyId, opts.log) } : {}),
        });
        const scheduler = new PollScheduler({
          ...timing.scheduler,
          budget,
          now: this.#now,
          log: opts.log.child({ provider: client.name, keyId: client.keyId }),
        });
        lane = { client, budget, scheduler, gate: (kind, signal) => budget.acquire(kind, signal) };
        byKey.set(client.keyId, lane);
      }
      if (!this.#lanes.has(client.name)) this.#lanes.set(client.name, lane);
    }

    this.#ownsReferenceDispatcher = !opts.referenceDispatcher;
    this.#referenceDispatcher = opts.referenceDispatcher ?? createGuardedDispatcher({ allowHosts: config.FETCH_ALLOW_HOSTS });
    this.#publicUrl = config.PUBLIC_URL;
    if (opts.http) {
      if (config.PUBLIC_URL) {
        this.#referenceHost = new ReferenceHost({ publicUrl: config.PUBLIC_URL });
        this.#referenceHost.mount(opts.http);
      }
      mountRunblobCallbacks(opts.http, {
        store: this.#store,
        log: this.#log,
        dedupTtlMs: CALLBACK_TOKEN_TTL_MS,
        onCallback: (target) => this.#onCallback(target),
      });
    }
    // Several processes sharing Redis: when one dies, its jobs' leases expire and another process
    // takes them over (start-up resume() covers the single-process case).
    const takeoverMs = timing.takeoverIntervalMs ?? TAKEOVER_INTERVAL_MS;
    if (takeoverMs > 0) {
      this.#takeoverTimer = setInterval(() => {
        this.#resumeJobs({ takeover: true }).catch((err: unknown) => this.#log.warn({ err }, 'takeover sweep failed'));
      }, takeoverMs);
      this.#takeoverTimer.unref();
    }
    this.#log.info(
      { models: this.models.map((m) => m.key), defaultModel: this.defaultModel.key, processId: this.processId },
      'engine ready',
    );
  }

  // ── EngineApi ────────────────────────────────────────────────────────────────────────────────

  async submit(input: ImagineRequestInput): Promise<JobRecord> {
    if (this.#closed) throw new EngineClosedError();
    const request = parseRequest(input, this.defaultModel.key);
    const model = resolveModel(this.models, request.model);
    // Stored with the catalog key, never an alias: buttons and resume look it up by key.
    request.model = model.key;
    validateAgainstModel(request, model, this.models);

    const id = newJobId();
    const log = this.#jobLog(id, model);
    const refsDir = join(this.#config.DATA_DIR, 'refs', id);
    const cleanRefs = () => rm(refsDir, { recursive: true, force: true }).catch(() => undefined);

    // References first: a bad reference costs the user nothing.
    let prepared: PreparedReference[] = [];
    let providerRefs: ProviderReference[] = [];
    if (request.references.length > 0) {
      try {
        prepared = await fetchReferences(request.references, {
          dir: refsDir,
          maxCount: model.maxReferences,
          dispatcher: this.#referenceDispatcher,
          allowHosts: this.#config.FETCH_ALLOW_HOSTS,
        });
        providerRefs = await toProviderReferences(prepared, model, this.#referenceHost, { allowHosts: this.#config.FETCH_ALLOW_HOSTS });
      } catch (err) {
        await cleanRefs();
        throw err;
      }
    }

    const units = this.#quotas.unitsFor(request.resolution, request.count);
    const userKey = this.#quotas.userKey(request.requester);
    let reservation;
    try {
      reservation = await this.#quotas.reserve(request.requester, units);
    } catch (err) {
      await cleanRefs();
      throw err;
    }
    const refundUnits = () => this.#quotas.refund(userKey, reservation.day, reservation.reserved).catch((e: unknown) => log.error({ err: e }, 'refund failed'));
    let spendReservedUsd: number;
    try {
      spendReservedUsd = (await this.#quotas.reserveSpend(estimatedUsdPerImage(model, request.resolution) * request.count)).reservedUsd;
    } catch (err) {
      await refundUnits();
      await cleanRefs();
      throw err;
    }

    const now = this.#now();
    const job: JobRecord = {
      id,
      request,
      state: 'queued',
      createdAt: now,
      updatedAt: now,
      deadlineAt: now + this.#deadlineMs,
      tasks: Array.from({ length: request.count }, (_, index): JobTask => ({ index, status: 'unsubmitted' })),
      quota: { userKey, day: reservation.day, reserved: reservation.reserved, refunded: 0, settled: false, spendReservedUsd },
    };
    try {
      if (prepared.length > 0) await this.#store.kv.set(jobReferencesKey(id), prepared, JOB_TTL_MS);
      await this.#store.kv.set(jobKey(id), job, JOB_TTL_MS);
      // Lease before joining the unfinished set, so another process's resume cannot grab it.
      await this.#store.lease(jobLeaseKey(id), this.processId, this.#leaseTtlMs);
      await this.#store.setAdd(UNFINISHED_JOBS_KEY, id);
    } catch (err) {
      await refundUnits();
      await this.#quotas.adjustSpend(reservation.day, -spendReservedUsd).catch(() => undefined);
      await cleanRefs();
      throw err;
    }
    log.info(
      { userKey, count: request.count, resolution: request.resolution, ratio: request.ratio, references: prepared.length, units },
      'job queued',
    );
    if (this.#closed) {
      // close() ran while this request was being prepared: its schedulers are gone, so a task
      // created now would be charged and then failed. The job is durable: the next start runs it.
      await this.#store.releaseLease(jobLeaseKey(id), this.processId).catch(() => undefined);
      return structuredClone(job);
    }
    this.#start(job, model, { providerRefs, resumed: false, log });
    return structuredClone(job);
  }

  async getJob(jobId: string): Promise<JobRecord | undefined> {
    const run = this.#runs.get(jobId);
    if (run) return structuredClone(run.job);
    return (await this.#store.kv.get<JobRecord>(jobKey(jobId))) ?? undefined;
  }

  async updateLocation(jobId: string, patch: PlatformLocation): Promise<void> {
    const run = this.#runs.get(jobId);
    if (run) {
      run.job.request.location = { ...run.job.request.location, ...patch };
      await this.#persist(run);
      return;
    }
    const job = await this.#store.kv.get<JobRecord>(jobKey(jobId));
    if (!job) throw new JobNotFoundError(jobId);
    job.request.location = { ...job.request.location, ...patch };
    job.updatedAt = this.#now();
    await this.#store.kv.set(jobKey(jobId), job, JOB_TTL_MS);
  }

  claimOnce(key: string, ttlMs: number): Promise<boolean> {
    return this.#store.setIfAbsent(`once:${key}`, '1', ttlMs);
  }

  quota(requester: Requester): Promise<QuotaView> {
    return this.#quotas.view(requester);
  }

  setDeliverer(platform: Platform, deliverer: Deliverer): void {
    this.#deliverers[platform] = deliverer;
  }

  resume(): Promise<number> {
    return this.#resumeJobs({ takeover: false });
  }

  /**
   * Starts every unfinished job no live process holds. The periodic takeover sweep takes a dead
   * process's jobs, running or finished-but-undelivered; a job whose delivery already failed every
   * attempt waits for a start, so a delivery that keeps failing is not retried every minute.
   */
  async #resumeJobs(o: { takeover: boolean }): Promise<number> {
    if (this.#closed) return 0;
    const ids = await this.#store.setMembers(UNFINISHED_JOBS_KEY);
    let resumed = 0;
    for (const id of ids) {
      if (this.#runs.has(id)) continue;
      try {
        const job = await this.#store.kv.get<JobRecord>(jobKey(id));
        if (!job) {
          await this.#store.setRemove(UNFINISHED_JOBS_KEY, id);
          continue;
        }
        if (isTerminalJobState(job.state) && job.deliveredAt !== undefined && job.quota.settled) {
          await this.#store.setRemove(UNFINISHED_JOBS_KEY, id);
          continue;
        }
        // A finished job is taken over (its process died before settling or delivering it), unless
        // its delivery already gave up here or this process cannot deliver it: those wait for a start.
        if (o.takeover && isTerminalJobState(job.state) && (this.#deliveryGaveUp(job) || !this.#deliverers[job.request.requester.platform])) continue;
        if (!(await this.#store.lease(jobLeaseKey(id), this.processId, this.#leaseTtlMs))) continue; // another process runs it
        if (this.#runs.has(id) || this.#closed) continue; // started meanwhile here (submit or another sweep)
        const model = MODEL_CATALOG.find((m) => m.key === job.request.model);
        const log = this.#jobLog(id, model);
        log.info(
          { state: job.state, tasks: job.tasks.map((t) => t.status), delivered: job.deliveredAt !== undefined },
          o.takeover ? 'taking over a job whose process stopped' : 'resuming job',
        );
        this.#start(job, model, { providerRefs: undefined, resumed: true, log });
        resumed++;
      } catch (err) {
        this.#log.error({ err, jobId: id }, 'could not resume job');
      }
    }
    return resumed;
  }

  #deliveryGaveUp(job: JobRecord): boolean {
    return (job.deliveryAttempts ?? 0) > this.#deliveryDelaysMs.length;
  }

  async waitFor(jobId: string, signal?: AbortSignal): Promise<JobRecord> {
    for (;;) {
      if (signal?.aborted) throw signal.reason;
      const run = this.#runs.get(jobId);
      if (run) {
        await (signal ? Promise.race([run.done, abortPromise(signal)]) : run.done);
        if (isTerminalJobState(run.job.state)) return structuredClone(run.job);
        if (this.#closed) throw new EngineClosedError();
        continue; // stopped by a lost lease: another process has it, follow the store
      }
      const job = await this.#store.kv.get<JobRecord>(jobKey(jobId));
      if (!job) throw new JobNotFoundError(jobId);
      if (isTerminalJobState(job.state)) return job;
      if (this.#closed) throw new EngineClosedError();
      // Run by another process (or not resumed yet): follow the store.
      await sleep(500, signal);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#takeoverTimer);
    const runs = [...this.#runs.values()];
    for (const run of runs) run.stop.abort(new EngineClosedError());
    // A deliverer cannot be interrupted; do not wait on a hung one forever.
    const stopped = Promise.allSettled(runs.map((r) => r.done));
    const gaveUp = new AbortController();
    await Promise.race([stopped, sleep(5_000, gaveUp.signal).catch(() => undefined)]);
    gaveUp.abort(); // no timer left behind to hold the process open
    for (const lane of new Set(this.#lanes.values())) lane.scheduler.close();
    if (this.#ownsReferenceDispatcher) await this.#referenceDispatcher.close().catch(() => undefined);
    this.#log.info({ stoppedJobs: runs.length }, 'engine closed');
  }

  // ── Running a job ────────────────────────────────────────────────────────────────────────────

  #jobLog(jobId: string, model: ModelSpec | undefined): Logger {
    return this.#log.child({ jobId, provider: model?.provider, model: model?.key });
  }

  #start(job: JobRecord, model: ModelSpec | undefined, o: { providerRefs: ProviderReference[] | undefined; resumed: boolean; log: Logger }): void {
    const stop = new AbortController();
    const deadline = new AbortController();
    const run: Run = {
      job,
      model,
      lane: model ? this.#lanes.get(model.provider) : undefined,
      log: o.log,
      stop,
      deadline,
      signal: AbortSignal.any([stop.signal, deadline.signal]),
      writes: Promise.resolve(),
      downloading: 0,
      lastProgressKey: '',
      providerRefs: o.providerRefs,
      timers: [],
      done: Promise.resolve(),
    };
    this.#runs.set(job.id, run);
    run.done = this.#drive(run, o.resumed)
      .catch((err: unknown) => run.log.error({ err }, 'job run failed unexpectedly; it resumes on the next start'))
      .finally(() => {
        for (const t of run.timers) clearTimeout(t);
        this.#runs.delete(job.id);
      });
  }

  async #drive(run: Run, resumed: boolean): Promise<void> {
    const { job } = run;
    let leaseLost = false;
    // Keep the lease while this process works on the job.
    const renew = setInterval(() => {
      this.#store.lease(jobLeaseKey(job.id), this.processId, this.#leaseTtlMs).then(
        (held) => {
          if (!held && !run.stop.signal.aborted) {
            leaseLost = true;
            run.log.error('lost the job lease to another process; stopping here');
            run.stop.abort(new LeaseLostError());
          }
        },
        (err: unknown) => run.log.warn({ err }, 'lease renewal failed'),
      );
    }, Math.max(50, Math.floor(this.#leaseTtlMs / 3)));
    run.timers.push(renew);
    try {
      if (!isTerminalJobState(job.state)) {
        const remaining = job.deadlineAt - this.#now();
        const deadlineIn = resumed ? Math.max(remaining, this.#resumeGraceMs) : Math.max(0, remaining);
        const deadlineTimer = setTimeout(() => run.deadline.abort(this.#deadlineError()), deadlineIn);
        const tick = setInterval(() => this.#emit(run, true), this.#tickMs);
        run.timers.push(deadlineTimer, tick);
        this.#emit(run, false);

        // allSettled: one task's unexpected failure (a store error) must not end the run while the
        // other tasks still create and poll, unleased, beside the run that resumes the job.
        const outcomes = await Promise.allSettled(job.tasks.map((task) => this.#runTask(run, task)));
        clearInterval(tick);
        clearTimeout(deadlineTimer);
        const broken = outcomes.find((r) => r.status === 'rejected');
        if (broken) throw broken.reason;
        if (run.stop.signal.aborted) return;
        await this.#finish(run);
        // Every task was sent: the prepared references are not needed any more.
        await rm(join(this.#config.DATA_DIR, 'refs', job.id), { recursive: true, force: true }).catch(() => undefined);
        await this.#store.kv.delete(jobReferencesKey(job.id)).catch(() => undefined);
      }
      if (!job.quota.settled) await this.#settle(run);
      if (run.stop.signal.aborted) return;
      this.#emit(run, false);
      await this.#deliver(run);
    } finally {
      clearInterval(renew);
      if (!leaseLost) await this.#store.releaseLease(jobLeaseKey(job.id), this.processId).catch(() => undefined);
    }
  }

  async #runTask(run: Run, task: JobTask): Promise<void> {
    try {
      if (isImageDone(task)) return;
      if (!run.lane || !run.model) throw new ProviderUnavailableError(`model ${run.job.request.model} is not configured`);
      if (task.status === 'unsubmitted') {
        if (task.submittedAt !== undefined) throw new SubmissionUnknownError();
        await this.#createTask(run, run.lane, run.model, task);
      }
      if (task.status === 'pending' || task.status === 'running') await this.#watchTask(run, run.lane, run.model, task);
      if (task.status === 'succeeded' && !task.image) await this.#downloadTask(run, task);
    } catch (err) {
      if (run.stop.signal.aborted) return; // stopped: the task resumes where it is
      const reason = run.deadline.signal.aborted ? run.deadline.signal.reason : err;
      task.status = 'failed';
      task.error = toJobError(reason);
      task.completedAt = this.#now();
      run.log.warn({ task: task.index, taskId: task.taskId, code: task.error.code, detail: task.error.detail }, 'task failed');
      await this.#persist(run);
      this.#emit(run, false);
    }
  }

  async #createTask(run: Run, lane: Lane, model: ModelSpec, task: JobTask): Promise<void> {
    const { job } = run;
    const { request } = job;
    const input: TaskInput = {
      prompt: request.prompt,
      model: model.providerModel,
      ratio: request.ratio,
      resolution: request.resolution,
      references: await this.#providerRefs(run, model),
    };
    if (model.creativity && request.creativity !== undefined) input.creativity = request.creativity;
    if (model.provider === 'runblob' && this.#publicUrl) {
      const token = newCallbackToken();
      await registerCallbackToken(this.#store, token, { jobId: job.id, index: task.index }, CALLBACK_TOKEN_TTL_MS);
      input.callbackUrl = runblobCallbackUrl(this.#publicUrl, token);
    }
    const gate: RequestGate = async (kind) => {
      // The deadline may stop a create waiting for its turn, but not one on the wire: that one may
      // already have made (and charged) the task, whose id must then be recorded, not dropped.
      await lane.gate(kind, run.signal);
      // From here the provider may create (and charge) the task: mark it, so a crash is detected.
      // Not before the gate: a create still queued for the budget when the process dies was never
      // sent, and the next start sends it instead of failing it as SUBMISSION_UNKNOWN.
      if (task.submittedAt === undefined) {
        task.submittedAt = this.#now();
        await this.#persist(run);
      }
    };
    const createOpts = { signal: run.stop.signal, gate };
    let backoffMs = this.#createBackoffMs;
    for (;;) {
      try {
        const created = await lane.client.createTask(input, createOpts);
        task.taskId = created.taskId;
        task.submittedAt = this.#now();
        // A create answer is never trusted as terminal: the output URL only comes with a poll.
        task.status = created.status === 'pending' ? 'pending' : 'running';
        if (created.costUsd !== undefined) task.costUsd = created.costUsd;
        break;
      } catch (err) {
        // 429 RATE_LIMITED means the provider turned the create away (nothing charged): the
        // client's own retries ran out, so wait longer, and make every request of this key wait.
        if (!(err instanceof RateLimitedError) || run.signal.aborted) throw err;
        run.log.warn({ task: task.index, waitMs: backoffMs }, 'create rate-limited; backing off');
        lane.budget.pauseFor(backoffMs);
        await sleep(backoffMs, run.signal);
        backoffMs = Math.min(backoffMs * 2, this.#createBackoffMs * 8);
      }
    }
    // Data URLs can be large: keep them only while a task still has to be sent.
    if (job.tasks.every((t) => t.status !== 'unsubmitted' || t.error)) run.providerRefs = undefined;
    if (job.state === 'queued') {
      job.state = 'submitted';
      job.startedAt = this.#now();
    }
    if (task.status === 'running' && job.state === 'submitted') job.state = 'running';
    await this.#persist(run);
    run.log.info({ task: task.index, taskId: task.taskId, costUsd: task.costUsd }, 'task submitted');
    this.#emit(run, false);
  }

  async #watchTask(run: Run, lane: Lane, model: ModelSpec, task: JobTask): Promise<void> {
    const { job } = run;
    const taskId = task.taskId;
    if (taskId === undefined) throw new SubmissionUnknownError();
    const snapshot = await lane.scheduler.watch(taskId, () => lane.client.getTask(taskId, { signal: run.signal, gate: lane.gate }), {
      expectedMs: this.#expectedMs(model, job.request.resolution),
      startedAt: task.submittedAt ?? this.#now(),
      signal: run.signal,
      onSnapshot: (s) => {
        if (s.status !== 'running' || task.status !== 'pending') return;
        task.status = 'running';
        if (job.state === 'submitted' || job.state === 'queued') job.state = 'running';
        this.#persist(run).catch((err: unknown) => run.log.warn({ err }, 'could not persist job'));
        this.#emit(run, false);
      },
    });
    if (snapshot.costUsd !== undefined) task.costUsd = snapshot.costUsd;
    if (snapshot.status === 'failed') {
      throw taskFailedError(model.provider, snapshot.failure ?? { code: 'GENERATION_FAILED', message: 'the task failed without a reason' });
    }
    const url = snapshot.outputUrls[0];
    if (!url) throw new MalformedResponseError({ provider: model.provider, message: 'task succeeded without an output URL' });
    task.outputUrl = url;
    task.status = 'succeeded';
    task.completedAt = this.#now();
    if (job.state === 'submitted' || job.state === 'queued') job.state = 'running';
    await this.#persist(run);
  }

  async #downloadTask(run: Run, task: JobTask): Promise<void> {
    const url = task.outputUrl;
    if (!url) throw new ResultDownloadError('no output URL recorded');
    const dir = join(this.#config.DATA_DIR, 'images', run.job.id);
    const guessed = extname(new URL(url).pathname).slice(1).toLowerCase();
    const ext = ['png', 'jpg', 'jpeg', 'webp'].includes(guessed) ? guessed : 'png';
    run.downloading++;
    this.#emit(run, false);
    try {
      const image = await downloadResult(url, join(dir, `${task.index}.${ext}`), {
        ...(this.#dispatcher ? { dispatcher: this.#dispatcher } : {}),
        signal: run.signal,
      });
      // Name the file after its real content, whatever the URL said.
      const realExt = EXTENSION_BY_MIME[image.mime];
      if (!image.path.endsWith(`.${realExt}`)) {
        const path = join(dir, `${task.index}.${realExt}`);
        await rename(image.path, path);
        image.path = path;
      }
      task.image = image;
    } finally {
      run.downloading--;
    }
    await this.#persist(run);
    run.log.info({ task: task.index, bytes: task.image.bytes, width: task.image.width, height: task.image.height }, 'result downloaded');
    this.#emit(run, false);
  }

  async #providerRefs(run: Run, model: ModelSpec): Promise<ProviderReference[]> {
    if (run.providerRefs) return run.providerRefs;
    if (run.job.request.references.length === 0) return (run.providerRefs = []);
    // Resumed: the files prepared at submit are still under DATA_DIR/refs/<jobId>.
    const prepared = await this.#store.kv.get<PreparedReference[]>(jobReferencesKey(run.job.id));
    if (!prepared) throw new ReferenceError(0, 'unreachable', 'the copy prepared at submission is gone');
    run.providerRefs = await toProviderReferences(prepared, model, this.#referenceHost, { allowHosts: this.#config.FETCH_ALLOW_HOSTS });
    return run.providerRefs;
  }

  /** Terminal state from the tasks: any image → succeeded (partial success keeps per-task errors). */
  async #finish(run: Run): Promise<void> {
    const { job } = run;
    const made = job.tasks.filter((t) => t.status === 'succeeded' && t.image);
    job.state = made.length > 0 ? 'succeeded' : 'failed';
    if (made.length === 0) {
      job.error = job.tasks.find((t) => t.error)?.error ?? {
        code: 'INTERNAL',
        userMessage: 'Something went wrong on our side while making your image. Please try again in a minute.',
      };
    }
    job.finishedAt = this.#now();
    await this.#persist(run);
    run.log.info({ state: job.state, made: made.length, failed: job.tasks.length - made.length, ms: job.finishedAt - job.createdAt }, 'job finished');
  }

  /**
   * Refunds the units of images not delivered and corrects the spend counter to what the
   * providers reported, exactly once per job, even if the process dies anywhere in here: the
   * refund and the correction are each one atomic store step with their own guard
   * (Quotas.refundOnce / adjustSpendOnce over Store.addOnce), and a resumed job settles again
   * from the same persisted (terminal) tasks, so a retry computes the same amounts and the guards
   * let through only what did not land. Partial success is covered: the one refund is for every
   * image not made. The `settled` flag only saves the round trips.
   */
  async #settle(run: Run): Promise<void> {
    const { job } = run;
    const { quota } = job;
    const count = job.tasks.length;
    const failed = job.tasks.filter((t) => !(t.status === 'succeeded' && t.image)).length;
    const refundUnits = count > 0 ? Math.round((quota.reserved / count) * failed) : 0;
    const estimatePerImage = count > 0 ? quota.spendReservedUsd / count : 0;
    // Money spent: what the provider reported per created task (Runbase reports 0 for failed runs),
    // and the estimate for a create that may have made a task whose id never came back.
    const spentUsd = job.tasks.reduce(
      (sum, t) => (t.taskId !== undefined ? sum + (t.costUsd ?? estimatePerImage) : mayHaveBeenCreated(t) ? sum + estimatePerImage : sum),
      0,
    );
    const settlementId = jobSettlementId(job.id);
    const refunded = refundUnits > 0 && (await this.#quotas.refundOnce(settlementId, quota.userKey, quota.day, refundUnits));
    const adjusted = await this.#quotas.adjustSpendOnce(settlementId, quota.day, spentUsd - quota.spendReservedUsd);
    // `applied: false` on a resumed settlement whose changes had already landed before the crash.
    run.log.info({ refundedUnits: refundUnits, chargedUnits: quota.reserved - refundUnits, spentUsd, applied: refunded || adjusted }, 'job settled');
    quota.refunded = refundUnits;
    quota.settled = true;
    await this.#persist(run);
  }

  async #deliver(run: Run): Promise<void> {
    const { job } = run;
    const platform = job.request.requester.platform;
    if (job.deliveredAt !== undefined) {
      await this.#store.setRemove(UNFINISHED_JOBS_KEY, job.id);
      return;
    }
    const deliverer = this.#deliverers[platform];
    if (!deliverer) {
      run.log.warn({ platform }, 'no deliverer for this platform; the job waits for one (next start)');
      return;
    }
    for (let attempt = 0; ; attempt++) {
      try {
        await deliverer.deliver(structuredClone(job));
      } catch (err) {
        job.deliveryAttempts = (job.deliveryAttempts ?? 0) + 1;
        await this.#persist(run).catch(() => undefined);
        const delay = this.#deliveryDelaysMs[attempt];
        if (delay === undefined || run.stop.signal.aborted) {
          run.log.error({ err, attempts: attempt + 1 }, 'delivery failed; giving up until the next start');
          // Stopping is not giving up: the next start delivers without this process saying so.
          if (delay === undefined) {
            await deliverer.undeliverable?.(structuredClone(job), err).catch((e: unknown) => run.log.warn({ err: e }, 'could not tell the requester the delivery failed'));
          }
          return;
        }
        run.log.warn({ err, attempt: attempt + 1, retryInMs: delay }, 'delivery failed; will retry');
        try {
          await sleep(delay, run.stop.signal);
        } catch {
          return;
        }
        continue;
      }
      // Delivered: a store error from here on must not deliver the result a second time now.
      job.deliveredAt = this.#now();
      await this.#persist(run);
      await this.#store.setRemove(UNFINISHED_JOBS_KEY, job.id);
      run.log.info({ attempts: attempt + 1 }, 'job delivered');
      return;
    }
  }

  #deadlineError(): DeadlineExceededError {
    return new DeadlineExceededError(Math.max(1, Math.round(this.#deadlineMs / 60_000)));
  }

  #onCallback(target: CallbackTarget): void {
    const run = this.#runs.get(target.jobId);
    const taskId = run?.job.tasks[target.index]?.taskId;
    // Not ours (another process runs it) or not created yet: polling covers it.
    if (!run || !run.lane || taskId === undefined) return;
    run.lane.scheduler.nudge(taskId);
  }

  /** Writes the job record; writes of one job are serialised, each writes the latest state. */
  #persist(run: Run): Promise<void> {
    const write = run.writes.then(async () => {
      run.job.updatedAt = this.#now();
      await this.#store.kv.set(jobKey(run.job.id), run.job, JOB_TTL_MS);
    });
    run.writes = write.catch(() => undefined);
    return write;
  }

  /** Progress to the platform: at once on a state/phase/count change, and on elapsed ticks. */
  #emit(run: Run, tick: boolean): void {
    const { job } = run;
    const deliverer = this.#deliverers[job.request.requester.platform];
    if (!deliverer) return;
    const done = job.tasks.filter(isImageDone).length;
    const phase: ProgressPhase = isTerminalJobState(job.state)
      ? 'done'
      : job.state === 'queued'
        ? 'queued'
        : run.downloading > 0
          ? 'downloading'
          : 'generating';
    const key = `${job.state}|${phase}|${done}`;
    const changed = key !== run.lastProgressKey;
    if (!changed && !tick) return;
    run.lastProgressKey = key;
    const event: ProgressEvent = {
      jobId: job.id,
      state: job.state,
      phase,
      elapsedMs: this.#now() - job.createdAt,
      done,
      total: job.tasks.length,
      changed,
    };
    try {
      Promise.resolve(deliverer.progress(structuredClone(job), event)).catch((err: unknown) =>
        run.log.warn({ err }, 'progress update failed'),
      );
    } catch (err) {
      run.log.warn({ err }, 'progress update failed');
    }
  }
}

/** Rough price per image for the spend-cap reservation; corrected by the reported cost at settlement. */
export function estimatedUsdPerImage(model: ModelSpec, resolution: Resolution): number {
  return model.estimatedUsd[resolution] ?? Math.max(0, ...Object.values(model.estimatedUsd));
}

/** Create failures after which the provider may hold (and have charged) a task we have no id for. */
const CREATE_OUTCOME_UNKNOWN_CODES: ReadonlySet<string> = new Set([
  'SUBMISSION_UNKNOWN',
  'PROVIDER_SERVER_ERROR',
  'PROVIDER_UNREACHABLE',
  'PROVIDER_MALFORMED_RESPONSE',
]);

function mayHaveBeenCreated(t: JobTask): boolean {
  return t.submittedAt !== undefined && CREATE_OUTCOME_UNKNOWN_CODES.has(t.error?.code ?? '');
}

/** How often a failing store is reported by a shared budget (it fails closed, so requests wait meanwhile). */
const BUDGET_STORE_ERROR_LOG_INTERVAL_MS = 60_000;

function sharedBudget(store: Store, keyId: string, log: Logger): NonNullable<RateBudgetOptions['shared']> {
  let loggedAt = -Infinity;
  return {
    counters: store,
    keyId,
    onError: (err) => {
      const now = Date.now();
      if (now - loggedAt < BUDGET_STORE_ERROR_LOG_INTERVAL_MS) return;
      loggedAt = now;
      log.warn({ err, keyId }, 'rate budget: store unavailable; provider requests wait for it');
    },
  };
}

function abortPromise(signal: AbortSignal): Promise<never> {
  return new Promise<never>((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

export function createEngine(opts: EngineOptions): Engine {
  return new Engine(opts);
}
