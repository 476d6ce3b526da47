/**
 * Resume and takeover: starts every unfinished job no live process holds. At start (resume) a
 * process picks up what was left; while running, it heart-beats and looks at its peers' heartbeats
 * every few seconds: when one stopped (killed, or handed its jobs over on SIGTERM), a sweep
 * (takeover) takes its jobs at once. A slower periodic sweep also takes jobs whose lease expired
 * while their process lives. docs/architecture.md "Scaling out" has the timing and the traffic.
 */
import { LeaseLostError } from '../job-errors.ts';
import { isTerminalJobState, type JobRecord } from '../job.ts';
import { MODEL_CATALOG } from '../models.ts';
import { sleep } from '../../util/sleep.ts';
import { jobLogger, type JobContext } from './context.ts';
import type { JobRunner } from './runner.ts';

/** A process's heartbeat: written every `intervalMs`, lives `ttlMs` (> 2 × intervalMs). */
export interface HeartbeatTiming {
  intervalMs: number;
  ttlMs: number;
}

export class ResumeSweep {
  readonly #ctx: JobContext;
  readonly #runner: JobRunner;
  readonly #closed: () => boolean;
  #timer: ReturnType<typeof setInterval> | undefined;
  #beatTimer: ReturnType<typeof setInterval> | undefined;
  #beating: Promise<void> | undefined;
  #looking = false;
  /** performance.now() when the last heartbeat that landed was sent: the store keeps it until then + ttl. */
  #lastBeatSentAt = -Infinity;
  /** True after this process stopped its runs because its heartbeat could not be renewed in time. */
  #fenced = false;
  /**
   * performance.now() until which peers whose heartbeat is gone are not taken over: this process's
   * own heartbeat was in trouble (the store did not answer), so theirs likely lapsed for the same
   * outage, not because they died. They get a heartbeat's life to reconnect and land the writes
   * their store client queued (a delivery, a task id) before anyone reads their jobs.
   */
  #peersGraceUntil = -Infinity;
  /** The end of the runs the last fence stopped: resuming waits for it, or it would skip them as still running here. */
  #fenceEnded: Promise<void> = Promise.resolve();
  #livePeers = 0;

  constructor(o: {
    ctx: JobContext;
    runner: JobRunner;
    closed: () => boolean;
  }) {
    this.#ctx = o.ctx;
    this.#runner = o.runner;
    this.#closed = o.closed;
  }

  /**
   * Starts the heartbeat: the first one now (resolves when it landed or failed), then one every
   * `intervalMs`, each followed by a look at the peers. A process whose heartbeat may lapse
   * before it lands again (it has not landed for ttl − interval) stops its runs itself, so a peer
   * that takes its jobs once the heartbeat is gone never runs one beside it.
   */
  startHeartbeat(t: HeartbeatTiming): Promise<void> {
    const first = this.#beat(t);
    this.#beatTimer = setInterval(() => {
      void this.#beat(t);
      this.#fenceIfLapsing(t);
      void this.#lookAtPeers();
    }, t.intervalMs);
    this.#beatTimer.unref();
    return first;
  }

  /**
   * Stops the heartbeat and ends it in the store, so peers take this process's jobs at once; with
   * `keepAlive` (a run still going), it goes on beating until the process exits.
   */
  async stopHeartbeat(keepAlive: boolean): Promise<void> {
    if (keepAlive) return;
    clearInterval(this.#beatTimer);
    await this.#beating;
    await this.#ctx.records.endHeartbeat().catch((err: unknown) => this.#ctx.log.warn({ err }, 'could not end the heartbeat'));
  }

  /** Other processes whose heartbeat lived at the last look (they can take jobs this one hands over). */
  get livePeers(): number {
    return this.#livePeers;
  }

  #beat(t: HeartbeatTiming): Promise<void> {
    if (this.#beating) return this.#beating; // the store is slow: one heartbeat at a time
    const sentAt = performance.now();
    let again = false;
    this.#beating = this.#ctx.records.heartbeat(t.ttlMs).then(
      () => {
        this.#lastBeatSentAt = Math.max(this.#lastBeatSentAt, sentAt);
        // A beat that waited out an outage may have landed long ago as far as this process can
        // tell (it counts from the send): another goes at once, and only a prompt one resumes.
        if (performance.now() - sentAt > t.intervalMs) {
          this.#storeTrouble(t);
          again = true;
          return;
        }
        if (!this.#fenced) return;
        this.#fenced = false;
        this.#ctx.log.info('heartbeat renewed again; resuming the jobs this process stopped');
        // A run that cannot end (a hung delivery) holds the others back for a heartbeat's life at most.
        const waited = new AbortController();
        Promise.race([this.#fenceEnded, sleep(t.ttlMs, waited.signal).catch(() => undefined)])
          .then(() => {
            waited.abort();
            return this.sweep({ takeover: true });
          })
          .catch((err: unknown) => this.#ctx.log.warn({ err }, 'resume after heartbeat failed'));
      },
      (err: unknown) => {
        this.#storeTrouble(t);
        this.#ctx.log.warn({ err }, 'heartbeat failed');
      },
    ).finally(() => {
      this.#beating = undefined;
      if (again && !this.#closed()) void this.#beat(t);
    });
    return this.#beating;
  }

  #fenceIfLapsing(t: HeartbeatTiming): void {
    if (this.#fenced || this.#closed() || performance.now() - this.#lastBeatSentAt < t.ttlMs - t.intervalMs) return;
    this.#fenced = true;
    this.#storeTrouble(t);
    const { stopped, ended } = this.#runner.abortAll(new LeaseLostError());
    this.#fenceEnded = ended;
    this.#ctx.log.error({ stoppedJobs: stopped }, 'heartbeat not renewed in time: stopped this process\'s jobs (a peer may take them)');
  }

  #storeTrouble(t: HeartbeatTiming): void {
    this.#peersGraceUntil = Math.max(this.#peersGraceUntil, performance.now() + t.ttlMs + t.intervalMs);
  }

  /** Sweeps when a peer's heartbeat is gone, then forgets that peer (not during the grace after a store outage). */
  async #lookAtPeers(): Promise<void> {
    if (this.#looking || this.#closed() || this.#fenced || performance.now() < this.#peersGraceUntil) return;
    this.#looking = true;
    try {
      const { live, stopped } = await this.#ctx.records.peers();
      this.#livePeers = live.length;
      // A look begun before an outage may answer after it: its "stopped" peers may only be reconnecting.
      if (stopped.length === 0 || this.#fenced || performance.now() < this.#peersGraceUntil) return;
      this.#ctx.log.info({ stopped }, 'peer processes stopped; taking over their jobs');
      await this.sweep({ takeover: true });
      for (const p of stopped) await this.#ctx.records.forgetProcess(p);
    } catch (err) {
      this.#ctx.log.warn({ err }, 'looking at peer processes failed');
    } finally {
      this.#looking = false;
    }
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
   * retried every minute. Right after a store outage it takes only jobs no process holds (see
   * #peersGraceUntil). A job is read again once leased: what its last holder wrote before letting
   * go of it (its delivery, say) is seen.
   */
  async sweep(o: { takeover: boolean }): Promise<number> {
    const { records, log } = this.#ctx;
    if (this.#closed() || this.#fenced) return 0;
    const ids = await records.unfinished();
    let resumed = 0;
    for (const id of ids) {
      if (this.#runner.has(id)) continue;
      try {
        if (!(await this.#takeable(id, o.takeover))) continue;
        // Asked at each lease: a sweep begun before an outage may go on after it.
        if (!(await records.lease(id, { onlyIfFree: performance.now() < this.#peersGraceUntil }))) continue; // another process runs it
        const job = await this.#takeable(id, o.takeover);
        if (!job) {
          if (!this.#runner.has(id)) await records.releaseLease(id);
          continue;
        }
        // Nothing awaited from here to start(): another sweep of this process may have started it.
        if (this.#runner.has(id) || this.#closed()) continue;
        const model = MODEL_CATALOG.find((m) => m.key === job.request.model);
        const jobLog = jobLogger(log, id, model);
        jobLog.info(
          { state: job.state, tasks: job.tasks.map((t) => t.status), delivered: job.deliveredAt !== undefined },
          o.takeover ? 'taking over a job whose process stopped' : 'resuming job',
        );
        if (this.#runner.start(job, model, { providerRefs: undefined, resumed: true, log: jobLog })) resumed++;
      } catch (err) {
        log.error({ err, jobId: id }, 'could not resume job');
      }
    }
    return resumed;
  }

  /** The job, if a sweep should run it: not gone, not done (those leave the unfinished set), and deliverable here. */
  async #takeable(id: string, takeover: boolean): Promise<JobRecord | undefined> {
    const { records, deliveries } = this.#ctx;
    const job = await records.get(id);
    if (!job || (isTerminalJobState(job.state) && job.deliveredAt !== undefined && job.quota.settled)) {
      await records.markFinished(id);
      return undefined;
    }
    // A finished job is taken over (its process died before settling or delivering it), unless
    // its delivery already gave up here or this process cannot deliver it: those wait for a start.
    if (takeover && isTerminalJobState(job.state) && (deliveries.gaveUp(job) || !deliveries.has(job.request.requester.platform))) return undefined;
    return job;
  }
}
