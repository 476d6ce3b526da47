/**
 * The engine's façade (EngineApi): owns a job from request to delivered result. It wires the
 * parts, each in its own file (docs/architecture.md "The flow of one job"):
 *
 * - validate.ts: the request against the model catalog (models.ts);
 * - jobs/admission.ts: references, quota and spend reservation, the durable job record;
 * - jobs/runner.ts + jobs/tasks.ts: the lease, the deadline, one provider task per image
 *   (create → watch → download);
 * - jobs/settlement.ts: refunds and spend correction, exactly once;
 * - jobs/delivery.ts: progress and delivery through the platform's Deliverer, with retries;
 * - jobs/resume.ts: resuming unfinished jobs at start, and taking over a dead process's jobs;
 * - lanes.ts: one RateBudget + PollScheduler per API key, from the providers' traits;
 * - provider-callbacks.ts and reference-host.ts: what the HTTP routes the composition root
 *   mounts (src/app.ts) call; the engine serves no HTTP itself.
 *
 * Durability rules: a task's provider id is persisted right after the create answer, and
 * `submittedAt` before the create goes out (jobs/tasks.ts); settlement is applied exactly once
 * (jobs/settlement.ts); a job leaves the unfinished set only when terminal AND delivered
 * (jobs/delivery.ts); each running job is leased in the store (jobs/records.ts).
 */
import type { Dispatcher } from 'undici';
import { BotError, UserFacingError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { ProviderClient } from '../providers/types.ts';
import { abortPromise, sleep } from '../util/sleep.ts';
import type { EngineApi, QuotaView } from './api.ts';
import { JobNotFoundError } from './errors.ts';
import { newJobId } from './ids.ts';
import { DurationEstimates } from './estimates.ts';
import { isTerminalJobState, snapshotJob, type Deliverer, type JobRecord } from './job.ts';
import { EngineClosedError } from './job-errors.ts';
import { admit } from './jobs/admission.ts';
import {
  CALLBACK_TOKEN_TTL_MS,
  EXPECTED_TASK_MS,
  HEARTBEAT_INTERVAL_MS,
  HEARTBEAT_TTL_MS,
  jobTimingOf,
  TAKEOVER_INTERVAL_MS,
  type JobContext,
  type JobTiming,
} from './jobs/context.ts';
import { Deliveries } from './jobs/delivery.ts';
import { JOB_TTL_MS, JobRecords } from './jobs/records.ts';
import { ResumeSweep } from './jobs/resume.ts';
import { JobRunner } from './jobs/runner.ts';
import { Lanes, type LanesOptions } from './lanes.ts';
import { chooseModels, type ModelSpec } from './models.ts';
import { createGuardedDispatcher } from './net-guard.ts';
import { ProviderCallbacks } from './provider-callbacks.ts';
import type { Quotas } from './quota.ts';
import type { OperatorCeilings, ScopeKey } from './governance/api.ts';
import { AuditLog } from './governance/audit.ts';
import { Governance, type AuditTrail, type UsageReports } from './governance/governance.ts';
import { UsageLedger } from './governance/usage.ts';
import { ReferenceHost, type PublishedFile } from './reference-host.ts';
import type { ImagineRequest, ImagineRequestInput, Platform, PlatformLocation, Requester } from './request.ts';
import { reachableByLink } from './references.ts';
import { STORE_PING_TIMEOUT_MS, type Store } from './store.ts';
import { parseRequest, resolveModel, validateAgainstModel } from './validate.ts';
import type { RecentResults } from './recent-results.ts';
import { downloadResult, type DownloadResultFn } from './results.ts';

/** Knobs for tests and benches (time scaled down); production uses the defaults. */
export interface EngineTiming extends Partial<Omit<JobTiming, 'deadlineMs'>> {
  /** Overrides EngineOptions.deadlineMs (JOB_DEADLINE_SECONDS, whose minimum is 10 s). */
  deadlineMs?: number;
  /** 0 turns the periodic sweep for unheld jobs off (a stopped peer's jobs are still taken, by the heartbeat). */
  takeoverIntervalMs?: number;
  /** This process's heartbeat period; peers are looked at just after each one. */
  heartbeatIntervalMs?: number;
  /** How long a heartbeat lives (> 2 × heartbeatIntervalMs). */
  heartbeatTtlMs?: number;
  /** Per provider: replaces the limit its traits give, as RateBudgetOptions (reserve/padding, shared buckets' k and m included). */
  rateLimits?: LanesOptions['rateLimits'];
  /** Poll plan overrides for every scheduler. */
  scheduler?: LanesOptions['scheduler'];
}

/** The settings the engine runs with (src/app.ts engineSettingsOf maps the Config to them). */
export interface EngineSettings {
  /** JOB_DEADLINE_SECONDS in ms. */
  deadlineMs: number;
  /** DATA_DIR. */
  dataDir: string;
  /** PUBLIC_URL: where provider callbacks (and served references) reach the bot. */
  publicUrl?: string | undefined;
  /**
   * True when the composition root serves `referenceFile` at REFERENCE_PATH_PREFIX on
   * publicUrl: local references then reach URL-only providers.
   */
  servesReferences?: boolean;
  /**
   * True when the composition root serves `providerCallback` at CALLBACK_PATH_PREFIX on
   * publicUrl: a provider's completion callback can reach this process.
   */
  servesCallbacks?: boolean;
  /** FETCH_ALLOW_HOSTS. */
  fetchAllowHosts: readonly string[];
  /** DEFAULT_MODEL: a model key, alias or label among the configured models; default the first. */
  defaultModel?: string | undefined;
}

export interface EngineOptions extends EngineSettings {
  store: Store;
  quotas: Quotas;
  providers: readonly ProviderClient[];
  log: Logger;
  now?: () => number;
  /** For result downloads in this thread (tests: a fake's dispatcher); default undici's global one. Unused with `downloadResult`. */
  dispatcher?: Dispatcher;
  /**
   * How results are downloaded: the app passes its ResultsWorker's (results-worker.ts, off the
   * event loop); default downloadResult (results.ts) in this thread, with `dispatcher`.
   */
  downloadResult?: DownloadResultFn;
  /** For user-given reference URLs; default an SSRF-guarded dispatcher honouring fetchAllowHosts. */
  referenceDispatcher?: Dispatcher;
  /** Where a result's bytes just written are handed to the deliverers (recent-results.ts); none: not kept. */
  recentResults?: RecentResults;
  /** This process's identity in job leases; default random. */
  processId?: string;
  timing?: EngineTiming;
  /** The app's metrics (src/metrics.ts): jobs, spend, rate-budget waits, failed deliveries. */
  metrics?: Metrics;
  /**
   * The operator's ceilings (src/app.ts ceilingsOf maps the Config to them); default: servers may
   * choose up to QUOTA_DAILY_UNITS, nothing unlimited, the global spend cap.
   */
  ceilings?: OperatorCeilings;
  /** The audit log of admin changes and filter refusals; default a minimal one on the store. */
  audit?: AuditTrail;
  /** Usage reports per user and model; default none (an empty report). */
  usage?: UsageReports;
}

/** How long close() waits for running jobs to stop (a hung deliverer cannot be interrupted). */
const CLOSE_WAIT_MS = 5_000;
/** How often waitFor() looks at a job another process runs. */
const FOLLOW_STORE_MS = 500;

export class Engine implements EngineApi {
  readonly models: readonly ModelSpec[];
  readonly defaultModel: ModelSpec;
  readonly processId: string;
  readonly governance: Governance;

  readonly #store: Store;
  readonly #ctx: JobContext;
  readonly #runner: JobRunner;
  readonly #sweep: ResumeSweep;
  readonly #ownsReferenceDispatcher: boolean;
  /** The first heartbeat: no job is leased before it landed (a peer would take the job at once). */
  readonly #alive: Promise<void>;
  /** Submissions in progress; close() lets them land in the store before it hands over. */
  readonly #admitting = new Set<Promise<unknown>>();
  #closed = false;
  /** close() ended the heartbeat: peers have swept this process's jobs, nothing more can be handed over. */
  #handedOver = false;

  constructor(opts: EngineOptions) {
    const now = opts.now ?? Date.now;
    this.processId = opts.processId ?? `engine-${newJobId()}`;
    const timing = opts.timing ?? {};

    ({ models: this.models, defaultModel: this.defaultModel } = chooseModels(new Set(opts.providers.map((p) => p.name)), opts.defaultModel));

    const jobTiming = jobTimingOf(timing, opts.deadlineMs);
    const records = new JobRecords({ store: opts.store, processId: this.processId, leaseTtlMs: jobTiming.leaseTtlMs, writeRetry: jobTiming.recordWriteRetry, now });
    const durations = new DurationEstimates((key, resolution) => {
      const model = this.models.find((m) => m.key === key);
      return model ? jobTiming.expectedMs(model, resolution) : EXPECTED_TASK_MS[resolution];
    });
    const usage = new UsageLedger(opts.store, { now });
    // A server's log channel is on its platform: the scope key starts with the platform's name.
    const notify = (scope: ScopeKey, channelId: string, text: string) =>
      this.#ctx.deliveries.notify(scope.slice(0, scope.indexOf(':')) as Platform, channelId, text);
    this.governance = new Governance({
      store: opts.store,
      quotas: opts.quotas,
      ceilings: opts.ceilings ?? {
        defaultDailyUnits: opts.quotas.dailyUnits,
        maxDailyUnits: opts.quotas.dailyUnits,
        allowUnlimited: false,
        globalSpendCapUsd: opts.quotas.spendCapUsd,
      },
      models: this.models,
      defaultModel: this.defaultModel,
      audit: opts.audit ?? new AuditLog(opts.store, { now, notify, log: opts.log }),
      usage: opts.usage ?? usage,
    });
    this.#ownsReferenceDispatcher = !opts.referenceDispatcher;
    this.#store = opts.store;
    this.#ctx = {
      quotas: opts.quotas,
      log: opts.log,
      now,
      timing: jobTiming,
      records,
      lanes: new Lanes({ providers: opts.providers, store: opts.store, log: opts.log, now, rateLimits: timing.rateLimits, scheduler: timing.scheduler, metrics: opts.metrics }),
      deliveries: new Deliveries({ records, now, retryDelaysMs: jobTiming.deliveryRetryDelaysMs, metrics: opts.metrics, durations }),
      callbacks: new ProviderCallbacks({
        store: opts.store,
        log: opts.log,
        ttlMs: CALLBACK_TOKEN_TTL_MS,
        onCallback: (target) => {
          const run = this.#runner.get(target.jobId);
          // Not ours (another process runs it): its polling covers it.
          if (!run) return;
          // Remembered for a task whose create answer or watch is still to come (jobs/tasks.ts watchTask).
          run.calledBack.add(target.index);
          const taskId = run.job.tasks[target.index]?.taskId;
          if (run.lane && taskId !== undefined) run.lane.scheduler.nudge(taskId);
        },
      }),
      dataDir: opts.dataDir,
      publicUrl: opts.publicUrl,
      // Alone on the store: a callback to PUBLIC_URL reaches this process, the one running the job.
      callbacksReachThisProcess: () => opts.servesCallbacks === true && opts.publicUrl !== undefined && this.#sweep.livePeers === 0,
      referenceHost: opts.servesReferences && opts.publicUrl ? new ReferenceHost({ publicUrl: opts.publicUrl }) : undefined,
      fetchAllowHosts: opts.fetchAllowHosts,
      downloadResult: opts.downloadResult ?? ((url, destPath, o) => downloadResult(url, destPath, { ...o, ...(opts.dispatcher && { dispatcher: opts.dispatcher }) })),
      recentResults: opts.recentResults,
      referenceDispatcher: opts.referenceDispatcher ?? createGuardedDispatcher({ allowHosts: opts.fetchAllowHosts }),
      metrics: opts.metrics,
      durations,
      usage,
    };
    this.#runner = new JobRunner(this.#ctx);
    this.#sweep = new ResumeSweep({ ctx: this.#ctx, runner: this.#runner, closed: () => this.#closed });
    // Several processes sharing Redis: when one dies or stops, another takes its jobs over as soon
    // as its heartbeat is gone (start-up resume() covers the single-process case).
    const heartbeatIntervalMs = timing.heartbeatIntervalMs ?? HEARTBEAT_INTERVAL_MS;
    const heartbeatTtlMs = timing.heartbeatTtlMs ?? HEARTBEAT_TTL_MS;
    if (heartbeatTtlMs <= 2 * heartbeatIntervalMs) throw new RangeError('heartbeatTtlMs must exceed 2 × heartbeatIntervalMs');
    this.#alive = this.#sweep.startHeartbeat({ intervalMs: heartbeatIntervalMs, ttlMs: heartbeatTtlMs });
    this.#sweep.startTakeover(timing.takeoverIntervalMs ?? TAKEOVER_INTERVAL_MS);
    opts.log.info(
      { models: this.models.map((m) => m.key), defaultModel: this.defaultModel.key, processId: this.processId },
      'engine ready',
    );
  }

  // ── EngineApi ────────────────────────────────────────────────────────────────────────────────

  async submit(input: ImagineRequestInput): Promise<JobRecord> {
    // Stopping, and no live peer to hand the job to (or the handover is done): nothing is reserved
    // or stored, and the user is told to try again in a moment.
    if (this.#closed && (this.#handedOver || this.#sweep.livePeers === 0)) throw new UserFacingError('BOT_RESTARTING');
    const admitting = this.#submit(input);
    this.#admitting.add(admitting);
    try {
      return await admitting;
    } catch (err) {
      throw await this.#explainStoreFailure(err);
    } finally {
      this.#admitting.delete(admitting);
    }
  }

  /**
   * A submit that failed on something other than a refusal, while the store does not answer (Redis
   * restarting, a dropped connection): STORE_UNAVAILABLE, so the user is told to try again rather
   * than that something went wrong. Admission gave back what it had taken before the failure.
   */
  async #explainStoreFailure(err: unknown): Promise<unknown> {
    if (err instanceof BotError) return err;
    const answers = await this.#store.ping(STORE_PING_TIMEOUT_MS).then(
      () => true,
      () => false,
    );
    if (answers) return err;
    this.#ctx.log.warn({ err }, 'a command failed while the store does not answer');
    return new UserFacingError('STORE_UNAVAILABLE');
  }

  async #submit(input: ImagineRequestInput): Promise<JobRecord> {
    // The server's rules (governance/policy.ts), the one place they apply: before references,
    // quota or spend are touched and before anything is sent. A refusal charges nothing.
    const decision = await this.governance.decide(parseRequest(input, this.defaultModel.key));
    const request = decision.request;
    let model = resolveModel(this.models, request.model);
    // Stored with the catalog key, never an alias: buttons and resume look it up by key.
    request.model = model.key;
    if (request.modelFromDefault) model = this.#modelForReferences(request, model, decision.allowedModels);
    validateAgainstModel(request, model, this.models);

    await this.#alive;
    const { job, providerRefs, log } = await admit(this.#ctx, request, model, { limit: decision.limit, serverSpendCapUsd: decision.serverSpendCapUsd });
    // For /history: losing this entry must not fail a job that is already durable and charged.
    await this.#ctx.records.remember(job).catch((err: unknown) => log.warn({ err }, 'could not add the job to its requester history'));
    if (this.#closed) {
      // Stopping (close() ran before or while this request was prepared): the schedulers are gone,
      // so a task created now would be charged and then failed. The job is durable and queued; its
      // lease is released, and a live peer takes it when close() ends the heartbeat (else the next start).
      await this.#ctx.records.releaseLease(job.id).catch(() => undefined);
      return snapshotJob(job);
    }
    // A sweep of this process may have leased and started it meanwhile (it reads unfinished jobs).
    if (!this.#runner.start(job, model, { providerRefs, resumed: false, log })) log.info('job already started here by a resume sweep');
    this.#ctx.metrics?.jobsStarted.inc({ platform: job.request.requester.platform, model: model.key, provider: model.provider });
    return snapshotJob(job);
  }

  /** Whether `model`'s provider can receive these references (inline, by their own link, or through the bot's server). */
  #takesReferences(model: ModelSpec, request: ImagineRequest): boolean {
    if (this.#ctx.lanes.get(model.provider)?.client.traits.inlineReferences) return true;
    return this.#ctx.referenceHost !== undefined || reachableByLink(request.references, this.#ctx.fetchAllowHosts);
  }

  /**
   * The user chose no model and the default cannot receive the references (a link-only provider,
   * files only the bot has, no PUBLIC_URL, as with Slack in Socket Mode): the first configured
   * model that can, and that can do the rest of the request, is used, and the note says so. When
   * none can, the default stays and admission refuses with the fix (REFERENCE_NEEDS_PUBLIC_URL).
   */
  #modelForReferences(request: ImagineRequest, model: ModelSpec, allowed: readonly ModelSpec[]): ModelSpec {
    if (request.references.length === 0 || this.#takesReferences(model, request)) return model;
    const fits = (m: ModelSpec) => {
      try {
        validateAgainstModel({ ...request, model: m.key }, m, this.models);
        return true;
      } catch {
        return false;
      }
    };
    // Only among the models the server allows.
    const other = allowed.find((m) => m !== model && this.#takesReferences(m, request) && fits(m));
    if (!other) return model;
    request.model = other.key;
    request.note = `${model.label} only takes reference images by link and this bot has no public address, so this uses ${other.label}.`;
    return other;
  }

  async getJob(jobId: string): Promise<JobRecord | undefined> {
    const run = this.#runner.get(jobId);
    if (run) return snapshotJob(run.job);
    return this.#ctx.records.get(jobId);
  }

  async cancel(jobId: string, by: Requester): Promise<JobRecord> {
    const job = await this.getJob(jobId);
    if (!job) throw new JobNotFoundError(jobId);
    if (job.state === 'canceled') return job;
    if (job.deliveredAt !== undefined) throw new UserFacingError('CANCEL_TOO_LATE');
    await this.#ctx.records.requestCancel(jobId, { userId: by.userId, at: this.#ctx.now() });
    // Held here: stopped at once. Held elsewhere (or by nobody yet): its holder reads the request.
    this.#runner.cancel(jobId);
    this.#ctx.log.info({ jobId, by: by.userId, state: job.state }, 'job cancel requested');
    return job;
  }

  async updateLocation(jobId: string, patch: PlatformLocation): Promise<void> {
    const run = this.#runner.get(jobId);
    if (run) {
      run.job.request.location = { ...run.job.request.location, ...patch };
      await this.#ctx.records.persist(run);
      return;
    }
    const job = await this.#ctx.records.get(jobId);
    if (!job) throw new JobNotFoundError(jobId);
    job.request.location = { ...job.request.location, ...patch };
    job.updatedAt = this.#ctx.now();
    await this.#ctx.records.put(job);
  }

  claimOnce(key: string, ttlMs: number): Promise<boolean> {
    return this.#store.setIfAbsent(`once:${key}`, '1', ttlMs);
  }

  history(requester: Requester, limit: number): Promise<JobRecord[]> {
    return this.#ctx.records.history(requester, limit);
  }

  async linkJob(key: string, jobId: string): Promise<void> {
    await this.#store.kv.set(`link:${key}`, jobId, JOB_TTL_MS);
  }

  async linkedJob(key: string): Promise<string | undefined> {
    return (await this.#store.kv.get<string>(`link:${key}`)) ?? undefined;
  }

  /** The requester's allowance here (a server's tiers, overrides and grants applied) and today's use. */
  async quota(requester: Requester): Promise<QuotaView> {
    const { allowance } = await this.governance.allowance(requester);
    return this.#ctx.quotas.view(requester, allowance);
  }

  setDeliverer(platform: Platform, deliverer: Deliverer): void {
    this.#ctx.deliveries.set(platform, deliverer);
  }

  async resume(): Promise<number> {
    await this.#alive;
    return this.#sweep.sweep({ takeover: false });
  }

  async waitFor(jobId: string, signal?: AbortSignal): Promise<JobRecord> {
    for (;;) {
      if (signal?.aborted) throw signal.reason;
      const run = this.#runner.get(jobId);
      if (run) {
        await (signal ? Promise.race([run.done, abortPromise(signal)]) : run.done);
        if (isTerminalJobState(run.job.state)) return snapshotJob(run.job);
        if (this.#closed) throw new EngineClosedError();
        continue; // stopped by a lost lease: another process has it, follow the store
      }
      const job = await this.#ctx.records.get(jobId);
      if (!job) throw new JobNotFoundError(jobId);
      if (isTerminalJobState(job.state)) return job;
      if (this.#closed) throw new EngineClosedError();
      // Run by another process (or not resumed yet): follow the store.
      await sleep(FOLLOW_STORE_MS, signal);
    }
  }

  /**
   * Hands over and stops: every run stops where it is (its job stays in the store, its lease
   * released), submissions in progress land in the store, then the heartbeat ends, so live peers
   * take all of them at their next look (≤ the heartbeat interval). A run that did not stop in
   * time keeps the heartbeat alive until the process exits (it lapses then), so no peer runs
   * that job beside it.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#sweep.stopTakeover();
    const startedAt = performance.now();
    const { stopped, stillRunning } = await this.#runner.stopAll(new EngineClosedError(), CLOSE_WAIT_MS);
    // One budget for both waits (main.ts exits anyway 10 s after SIGTERM).
    const gaveUp = new AbortController();
    const left = Math.max(0, CLOSE_WAIT_MS - (performance.now() - startedAt));
    await Promise.race([Promise.allSettled(this.#admitting), sleep(left, gaveUp.signal).catch(() => undefined)]);
    gaveUp.abort();
    await this.#sweep.stopHeartbeat(stillRunning > 0 || this.#admitting.size > 0);
    this.#handedOver = true;
    this.#ctx.lanes.close();
    if (this.#ownsReferenceDispatcher) await this.#ctx.referenceDispatcher.close().catch(() => undefined);
    this.#ctx.log.info({ stoppedJobs: stopped, stillRunning }, 'engine closed; its jobs are handed over');
  }

  // ── What the composition root's HTTP routes call ─────────────────────────────────────────────

  /**
   * A provider's completion callback (POST <CALLBACK_PATH_PREFIX><provider>/<token>): undefined
   * for an unknown token (answer 404), else the work to run once answered. Bound.
   */
  readonly providerCallback = (provider: string, token: string): Promise<(() => Promise<void>) | undefined> =>
    this.#ctx.callbacks.receive(provider, token);

  /** A reference published for a URL-only provider (GET <REFERENCE_PATH_PREFIX><token>); undefined when unknown or expired. Bound. */
  readonly referenceFile = (token: string): PublishedFile | undefined => this.#ctx.referenceHost?.lookup(token);
}

export function createEngine(opts: EngineOptions): Engine {
  return new Engine(opts);
}
