/**
 * Resume and takeover: starts every unfinished job no live process holds. At start (resume) a
 * process picks up what was left; while running, a periodic sweep (takeover) takes the jobs of a
 * process that died (their leases expired), so processes sharing Redis cover for each other.
 */
import { isTerminalJobState } from '../job.ts';
import { MODEL_CATALOG } from '../models.ts';
import { jobLogger, type JobContext } from './context.ts';
import type { JobRunner } from './runner.ts';

export class ResumeSweep {
  readonly #ctx: JobContext;
  readonly #runner: JobRunner;
  readonly #closed: () => boolean;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(o: {
    ctx: JobContext;
    runner: JobRunner;
    closed: () => boolean;
  }) {
    this.#ctx = o.ctx;
    this.#runner = o.runner;
    this.#closed = o.closed;
  }

  /** Sweeps every `intervalMs` for jobs whose process stopped; 0 turns it off. */
  startTakeover(intervalMs: number): void {
    if (intervalMs <= 0) return;
    this.#timer = setInterval(() => {
      this.sweep({ takeover: true }).catch((err: unknown) => this.#ctx.log.warn({ err }, 'takeover sweep failed'));
    }, intervalMs);
    this.#timer.unref();
  }

  stopTakeover(): void {
    clearInterval(this.#timer);
  }

  /**
   * Starts every unfinished job no live process holds; returns how many. The periodic takeover
   * sweep takes a dead process's jobs, running or finished-but-undelivered; a job whose delivery
   * already failed every attempt waits for a start, so a delivery that keeps failing is not
   * retried every minute.
   */
  async sweep(o: { takeover: boolean }): Promise<number> {
    const { records, deliveries, log } = this.#ctx;
    if (this.#closed()) return 0;
    const ids = await records.unfinished();
    let resumed = 0;
    for (const id of ids) {
      if (this.#runner.has(id)) continue;
      try {
        const job = await records.get(id);
        if (!job) {
          await records.markFinished(id);
          continue;
        }
        if (isTerminalJobState(job.state) && job.deliveredAt !== undefined && job.quota.settled) {
          await records.markFinished(id);
          continue;
        }
        // A finished job is taken over (its process died before settling or delivering it), unless
        // its delivery already gave up here or this process cannot deliver it: those wait for a start.
        if (o.takeover && isTerminalJobState(job.state) && (deliveries.gaveUp(job) || !deliveries.has(job.request.requester.platform))) continue;
        if (!(await records.lease(id))) continue; // another process runs it
        if (this.#runner.has(id) || this.#closed()) continue; // started meanwhile here (submit or another sweep)
        const model = MODEL_CATALOG.find((m) => m.key === job.request.model);
        const jobLog = jobLogger(log, id, model);
        jobLog.info(
          { state: job.state, tasks: job.tasks.map((t) => t.status), delivered: job.deliveredAt !== undefined },
          o.takeover ? 'taking over a job whose process stopped' : 'resuming job',
        );
        this.#runner.start(job, model, { providerRefs: undefined, resumed: true, log: jobLog });
        resumed++;
      } catch (err) {
        log.error({ err, jobId: id }, 'could not resume job');
      }
    }
    return resumed;
  }
}
