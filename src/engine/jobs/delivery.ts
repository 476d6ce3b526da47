/**
 * Delivery: the platforms' deliverers, progress events, and delivering a finished job with
 * retries. A job is marked delivered (and leaves the unfinished set) only once its deliverer
 * resolved; after the last retry it waits for the next start, and the requester is told
 * (`undeliverable`), so nobody is left looking at a placeholder that never moves.
 */
import type { Logger } from '../../log.ts';
import type { Metrics } from '../../metrics.ts';
import { sleep } from '../../util/sleep.ts';
import { isTerminalJobState, snapshotJob, type Deliverer, type DelivererRegistry, type JobRecord, type JobTask, type ProgressEvent, type ProgressPhase } from '../job.ts';
import type { Platform } from '../request.ts';
import type { DurationEstimates } from '../estimates.ts';
import type { Run } from './context.ts';
import type { JobRecords } from './records.ts';

export const isImageDone = (t: JobTask): boolean => t.status === 'failed' || (t.status === 'succeeded' && t.image !== undefined);

export class Deliveries {
  readonly #registry: DelivererRegistry = {};
  readonly #records: JobRecords;
  readonly #now: () => number;
  readonly #retryDelaysMs: readonly number[];
  readonly #metrics: Metrics | undefined;
  readonly #durations: DurationEstimates | undefined;

  constructor(o: { records: JobRecords; now: () => number; retryDelaysMs: readonly number[]; metrics?: Metrics | undefined; durations?: DurationEstimates }) {
    this.#durations = o.durations;
    this.#records = o.records;
    this.#now = o.now;
    this.#retryDelaysMs = o.retryDelaysMs;
    this.#metrics = o.metrics;
  }

  set(platform: Platform, deliverer: Deliverer): void {
    this.#registry[platform] = deliverer;
  }

  /** Posts `text` in a channel of `platform` (a server's log channel), if its deliverer can. */
  async notify(platform: Platform, channelId: string, text: string): Promise<void> {
    await this.#registry[platform]?.notify?.(channelId, text);
  }

  has(platform: Platform): boolean {
    return this.#registry[platform] !== undefined;
  }

  /** Whether the job's deliverer takes its results' bytes from memory (Deliverer.takesKeptResults); none registered here: nobody does. */
  takesKeptResults(job: JobRecord): boolean {
    const deliverer = this.#registry[job.request.requester.platform];
    return deliverer !== undefined && deliverer.takesKeptResults !== false;
  }

  /** Every attempt failed here already: the job waits for a start rather than a takeover sweep. */
  gaveUp(job: JobRecord): boolean {
    return (job.deliveryAttempts ?? 0) > this.#retryDelaysMs.length;
  }

  /** Progress to the platform: at once on a state/phase/count change, and on elapsed ticks. */
  emit(run: Run, tick: boolean): void {
    const { job } = run;
    const deliverer = this.#registry[job.request.requester.platform];
    if (!deliverer) return;
    const done = job.tasks.filter(isImageDone).length;
    // Every task ended: the job is being settled and delivered, whatever its state says yet.
    const phase: ProgressPhase =
      isTerminalJobState(job.state) || (done === job.tasks.length && done > 0)
        ? 'done'
        : job.state === 'queued'
          ? 'queued'
          : run.downloading > 0
            ? 'downloading'
            : 'generating';
    // How long (docs/architecture.md "How long: what the placeholder says"): the place in the rate budget's queue while
    // waiting for it, else the usual generation time of this model and size.
    const queue = phase === 'queued' && !run.signal.aborted ? run.lane?.budget.queuePosition(run.signal) : undefined;
    const since = Math.min(...job.tasks.flatMap((t) => (t.taskId !== undefined && t.submittedAt !== undefined ? [t.submittedAt] : [])));
    const generating =
      phase === 'generating' && Number.isFinite(since) && this.#durations
        ? { since, expectedMs: this.#durations.expectedMs(job.request.model, job.request.resolution) }
        : undefined;
    // A change is what the placeholder shows (commands/render.ts progressText): the phase, the
    // images done, a new place in the queue. Not the state itself: "submitted" and "running" read
    // the same ("Generating…"), and an edit for it would spend a message edit (Slack's are
    // budgeted per workspace) on nothing. The estimate rides on ticks.
    const key = `${phase}|${done}|${queue?.ahead ?? ''}`;
    const changed = key !== run.lastProgressKey;
    if (!changed && !tick) return;
    // A tick the platform would not show now: no event, no copy of the job.
    if (!changed && deliverer.wantsTick?.(job.id) === false) return;
    run.lastProgressKey = key;
    const event: ProgressEvent = {
      jobId: job.id,
      state: job.state,
      phase,
      elapsedMs: this.#now() - job.createdAt,
      done,
      total: job.tasks.length,
      changed,
      ...(queue && { queue }),
      ...(generating && { generating }),
    };
    try {
      Promise.resolve(deliverer.progress(snapshotJob(job), event)).catch((err: unknown) =>
        run.log.warn({ err }, 'progress update failed'),
      );
    } catch (err) {
      run.log.warn({ err }, 'progress update failed');
    }
  }

  /** Delivers a terminal job, retrying with backoff; marks it delivered once the deliverer resolved. */
  async deliver(run: Run): Promise<void> {
    const { job } = run;
    const platform = job.request.requester.platform;
    if (job.deliveredAt !== undefined) {
      await this.#records.markFinished(job.id);
      return;
    }
    const deliverer = this.#registry[platform];
    if (!deliverer) {
      run.log.warn({ platform }, 'no deliverer for this platform; the job waits for one (next start)');
      return;
    }
    for (let attempt = 0; ; attempt++) {
      try {
        await deliverer.deliver(snapshotJob(job));
      } catch (err) {
        job.deliveryAttempts = (job.deliveryAttempts ?? 0) + 1;
        await this.#records.persist(run).catch(() => undefined);
        const delay = this.#retryDelaysMs[attempt];
        if (delay === undefined || run.stop.signal.aborted) {
          run.log.error({ err, attempts: attempt + 1 }, 'delivery failed; giving up until the next start');
          // Stopping is not giving up: the next start delivers without this process saying so.
          if (delay === undefined) await this.#undeliverable(deliverer, job, err, run.log);
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
      await this.#records.persist(run);
      await this.#records.markFinished(job.id);
      run.log.info({ attempts: attempt + 1 }, 'job delivered');
      return;
    }
  }

  /** The run has ended, however: its deliverer drops what it kept for the job (Deliverer.forget). */
  forget(run: Run): void {
    try {
      this.#registry[run.job.request.requester.platform]?.forget?.(run.job.id);
    } catch (err) {
      // The run's end (its lease's release) must not depend on an adapter's housekeeping.
      run.log.warn({ err }, 'the deliverer could not let go of the job');
    }
  }

  async #undeliverable(deliverer: Deliverer, job: JobRecord, err: unknown, log: Logger): Promise<void> {
    this.#metrics?.deliveriesFailed.inc({ platform: job.request.requester.platform });
    await deliverer.undeliverable?.(snapshotJob(job), err).catch((e: unknown) => log.warn({ err: e }, 'could not tell the requester the delivery failed'));
  }
}
