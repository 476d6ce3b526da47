/**
 * Runs jobs in this process: keeps each one's lease, arms its deadline and progress ticks, runs
 * its tasks in parallel (tasks.ts), then finishes, settles (settlement.ts) and delivers
 * (delivery.ts) it. A job whose run stops (close(), a lost lease) stays in the store as it is,
 * and the next start or another process picks it up.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { sentenceFor } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import type { ProviderReference } from '../../providers/types.ts';
import { sleep } from '../../util/sleep.ts';
import { DeadlineExceededError } from '../errors.ts';
import { isTerminalJobState, type JobRecord } from '../job.ts';
import { JobCanceledError, toJobError } from '../job-errors.ts';
import type { ModelSpec } from '../models.ts';
import { loseLease, type JobContext, type Run } from './context.ts';
import { settle } from './settlement.ts';
import { runTask } from './tasks.ts';

export interface StartOptions {
  providerRefs: ProviderReference[] | undefined;
  resumed: boolean;
  log: Logger;
}

export class JobRunner {
  readonly #ctx: JobContext;
  readonly #runs = new Map<string, Run>();
  /** One timer renews every run's lease (while there are runs), in one store round trip. */
  #renewTimer: ReturnType<typeof setInterval> | undefined;
  #renewing = false;

  constructor(ctx: JobContext) {
    this.#ctx = ctx;
  }

  /** The run of a job this process is running, if any. */
  get(jobId: string): Run | undefined {
    return this.#runs.get(jobId);
  }

  has(jobId: string): boolean {
    return this.#runs.has(jobId);
  }

  /**
   * Starts a job this process holds the lease of, in the background; false (nothing started) when
   * this process runs it already: a sweep may lease a job its own submit has not started yet.
   */
  start(job: JobRecord, model: ModelSpec | undefined, o: StartOptions): boolean {
    if (this.#runs.has(job.id)) return false;
    const stop = new AbortController();
    const deadline = new AbortController();
    const cancel = new AbortController();
    const run: Run = {
      job,
      model,
      lane: model ? this.#ctx.lanes.get(model.provider) : undefined,
      log: o.log,
      stop,
      abandon: new AbortController(),
      leaseLost: false,
      releasing: false,
      deadline,
      cancel,
      signal: AbortSignal.any([stop.signal, deadline.signal, cancel.signal]),
      writes: Promise.resolve(),
      downloading: 0,
      lastProgressKey: '',
      calledBack: new Set(),
      noCallback: new Set(),
      resumed: o.resumed,
      providerRefs: o.providerRefs,
      timers: [],
      done: Promise.resolve(),
    };
    this.#runs.set(job.id, run);
    this.#renewTimer ??= setInterval(() => void this.#renewLeases(), Math.max(50, Math.floor(this.#ctx.timing.leaseTtlMs / 3)));
    this.#ctx.metrics?.jobsInFlight.inc();
    run.done = this.#drive(run, o.resumed)
      .catch((err: unknown) => run.log.error({ err }, 'job run failed unexpectedly; it resumes on the next start'))
      .finally(() => {
        for (const t of run.timers) clearTimeout(t);
        this.#runs.delete(job.id);
        if (this.#runs.size === 0) {
          clearInterval(this.#renewTimer);
          this.#renewTimer = undefined;
        }
        this.#ctx.metrics?.jobsInFlight.dec();
      });
    return true;
  }

  /** Cancels a run of this process at once (the request is already in the store). */
  cancel(jobId: string): boolean {
    const run = this.#runs.get(jobId);
    if (!run) return false;
    if (!run.cancel.signal.aborted) run.cancel.abort(new JobCanceledError());
    return true;
  }

  /**
   * Aborts every run where it is, a create on the wire included (their jobs stay in the store; each
   * run releases its lease as it ends): this process may no longer own them. Returns how many,
   * and a promise of their end.
   */
  abortAll(reason: unknown): { stopped: number; ended: Promise<void> } {
    const runs = [...this.#runs.values()];
    for (const run of runs) {
      run.stop.abort(reason);
      run.abandon.abort(reason);
    }
    return { stopped: runs.length, ended: Promise.allSettled(runs.map((r) => r.done)).then(() => undefined) };
  }

  /**
   * Stops every run where it is (their jobs stay in the store, their leases released); resolves
   * when they stopped or after `maxWaitMs`, with how many there were and how many still run. A
   * create already on the wire is let finish meanwhile, so its task id is recorded.
   */
  async stopAll(reason: unknown, maxWaitMs: number): Promise<{ stopped: number; stillRunning: number }> {
    const runs = [...this.#runs.values()];
    for (const run of runs) run.stop.abort(reason);
    // A deliverer cannot be interrupted, and a create may hang; do not wait on them forever.
    const gaveUp = new AbortController();
    await Promise.race([Promise.allSettled(runs.map((r) => r.done)), sleep(maxWaitMs, gaveUp.signal).catch(() => undefined)]);
    gaveUp.abort(); // no timer left behind to hold the process open
    for (const run of runs) run.abandon.abort(reason);
    return { stopped: runs.length, stillRunning: runs.filter((r) => this.#runs.get(r.job.id) === r).length };
  }

  /**
   * Renews the lease of every run, and reads their cancel requests, in one round trip each (a
   * cancel clicked on another process is seen here at the latest one renewal later). A run whose
   * lease another process took stops at once.
   */
  async #renewLeases(): Promise<void> {
    if (this.#renewing) return; // the store is slow: one renewal at a time
    // Stopped runs too: one still delivering keeps its job from running beside it elsewhere.
    const runs = [...this.#runs.values()].filter((r) => !r.releasing);
    if (runs.length === 0) return;
    this.#renewing = true;
    const ids = runs.map((r) => r.job.id);
    try {
      const [held, cancels] = await Promise.all([
        this.#ctx.records.renewLeases(ids).catch((err: unknown) => {
          this.#ctx.log.warn({ err, jobs: ids.length }, 'lease renewal failed');
          return undefined;
        }),
        this.#ctx.records.cancelRequests(ids).catch((err: unknown) => {
          this.#ctx.log.warn({ err, jobs: ids.length }, 'could not read the cancel requests');
          return undefined;
        }),
      ]);
      runs.forEach((run, i) => {
        if (cancels?.[i]) this.#honourCancel(run);
        if (held?.[i] !== false || run.stop.signal.aborted) return;
        loseLease(run, 'lost the job lease to another process; stopping here');
      });
    } finally {
      this.#renewing = false;
    }
  }

  async #drive(run: Run, resumed: boolean): Promise<void> {
    const ctx = this.#ctx;
    const { job } = run;
    try {
      // A resumed job may have been canceled while nobody ran it. A fresh one needs no read here:
      // each of its tasks reads the request before its create (tasks.ts, the create's gate).
      if (resumed && !isTerminalJobState(job.state)) await this.#checkCancel(run);
      if (!isTerminalJobState(job.state)) {
        const remaining = job.deadlineAt - ctx.now();
        const deadlineIn = resumed ? Math.max(remaining, ctx.timing.resumeGraceMs) : Math.max(0, remaining);
        const deadlineTimer = setTimeout(() => run.deadline.abort(this.#deadlineError()), deadlineIn);
        const tick = setInterval(() => ctx.deliveries.emit(run, true), ctx.timing.progressTickMs);
        run.timers.push(deadlineTimer, tick);
        ctx.deliveries.emit(run, false);

        // allSettled: one task's unexpected failure (a store error) must not end the run while the
        // other tasks still create and poll, unleased, beside the run that resumes the job.
        const outcomes = await Promise.allSettled(job.tasks.map((task) => runTask(ctx, run, task)));
        clearInterval(tick);
        clearTimeout(deadlineTimer);
        const broken = outcomes.find((r) => r.status === 'rejected');
        if (broken) throw broken.reason;
        if (run.stop.signal.aborted) return;
        // Written by the settlement below (a settled job is terminal in the store: it never gets here).
        this.#finish(run);
        // Every task was sent: the prepared references are not needed any more.
        if (job.request.references.length > 0) {
          await rm(join(ctx.dataDir, 'refs', job.id), { recursive: true, force: true }).catch(() => undefined);
          await ctx.records.forgetReferences(job.id).catch(() => undefined);
        }
      }
      if (!job.quota.settled) await settle(run, ctx.quotas, ctx.records, ctx.metrics, ctx.usage);
      if (run.stop.signal.aborted) return;
      // Canceled after the images were made but before they were posted: nothing is posted.
      if (job.deliveredAt === undefined && job.state !== 'canceled' && (await this.#checkCancel(run))) await this.#markCanceled(run);
      ctx.deliveries.emit(run, false);
      await ctx.deliveries.deliver(run);
    } finally {
      run.releasing = true;
      ctx.deliveries.forget(run);
      if (!run.leaseLost) await ctx.records.releaseLease(job.id).catch(() => undefined);
    }
  }

  /** True (and the run's cancel aborted) when someone asked to cancel the job. */
  async #checkCancel(run: Run): Promise<boolean> {
    if (run.cancel.signal.aborted) return true;
    if (!(await this.#ctx.records.cancelRequest(run.job.id))) return false;
    this.#honourCancel(run);
    return true;
  }

  #honourCancel(run: Run): void {
    if (run.cancel.signal.aborted) return;
    run.log.info('cancel requested; stopping the job');
    run.cancel.abort(new JobCanceledError());
  }

  async #markCanceled(run: Run): Promise<void> {
    this.#cancelInMemory(run);
    await this.#ctx.records.persist(run);
  }

  #cancelInMemory(run: Run): void {
    const { job } = run;
    job.state = 'canceled';
    job.error = toJobError(run.cancel.signal.reason ?? new JobCanceledError());
    job.finishedAt ??= this.#ctx.now();
  }

  /**
   * Terminal state from the tasks: any image → succeeded (partial success keeps per-task errors);
   * a canceled run → canceled, whatever was made (nothing of it is posted). Written with the
   * settlement, which follows at once (settlement.ts persists the record): every task's outcome
   * is in the store already, so a crash in between finishes the job the same way on resume.
   */
  #finish(run: Run): void {
    const { job } = run;
    const made = job.tasks.filter((t) => t.status === 'succeeded' && t.image);
    if (run.cancel.signal.aborted) {
      this.#cancelInMemory(run);
      this.#ctx.metrics?.jobFinished(job, run.model);
      run.log.info({ state: job.state, made: made.length, accepted: job.tasks.filter((t) => t.taskId !== undefined).length }, 'job canceled');
      return;
    }
    job.state = made.length > 0 ? 'succeeded' : 'failed';
    if (made.length === 0) {
      job.error = job.tasks.find((t) => t.error)?.error ?? { code: 'INTERNAL', userMessage: sentenceFor('INTERNAL', {}) };
    }
    job.finishedAt = this.#ctx.now();
    this.#ctx.metrics?.jobFinished(job, run.model);
    run.log.info({ state: job.state, made: made.length, failed: job.tasks.length - made.length, ms: job.finishedAt - job.createdAt }, 'job finished');
  }

  #deadlineError(): DeadlineExceededError {
    return new DeadlineExceededError(Math.max(1, Math.round(this.#ctx.timing.deadlineMs / 60_000)));
  }
}
