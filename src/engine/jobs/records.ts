/**
 * Job records and leases in the store. A job is written at every state change, so a process
 * killed at any point can resume it; each running job is leased (`lease:job:<id>`, naming the
 * process), renewed while it runs, so processes sharing Redis never run the same job twice. The
 * unfinished set holds the jobs that are not yet terminal AND delivered; resume walks it.
 *
 * Each process also heart-beats: one short lease `alive:<processId>` per PROCESS, and its name
 * in the `processes` set. A job lease whose holder's heartbeat is gone is taken at once, without
 * waiting for the job lease to expire (docs/architecture.md "Scaling out").
 */
import { DAY_MS } from '../quota.ts';
import type { JobRecord } from '../job.ts';
import type { PreparedReference } from '../references.ts';
import type { Requester } from '../request.ts';
import type { Store } from '../store.ts';
import { sleep } from '../../util/sleep.ts';
import { loseLease, type RetryTiming, type Run } from './context.ts';
import { LeaseLostError } from '../job-errors.ts';

/** Job records outlive the job so that buttons keep working for weeks (docs/architecture.md). */
export const JOB_TTL_MS = 60 * DAY_MS;
/** The store set of jobs that are not yet terminal-and-delivered; resume() walks it. */
export const UNFINISHED_JOBS_KEY = 'jobs:unfinished';
export const jobKey = (jobId: string): string => `job:${jobId}`;
export const jobLeaseKey = (jobId: string): string => `lease:job:${jobId}`;
/** A process's heartbeat lease is `${ALIVE_KEY_PREFIX}<processId>`. */
export const ALIVE_KEY_PREFIX = 'alive:';
/** The set of processes that heart-beat (or did, until a peer saw them stop and swept their jobs). */
export const PROCESSES_KEY = 'processes';
const jobReferencesKey = (jobId: string) => `job-refs:${jobId}`;
/** How many of a user's jobs /history can list (the newest). */
export const HISTORY_MAX_JOBS = 50;
/** A user's last jobs, newest first (Store.recentPush); lives as long as the job records. */
export const historyKey = (r: Requester): string => `history:${r.platform}:${r.userId}`;
/** A cancel request, written by whichever process got the click; the job's holder honours it. */
export const jobCancelKey = (jobId: string): string => `cancel:job:${jobId}`;

/** Who asked to cancel a job, and when (the record of a cancel request). */
export interface CancelRequest {
  userId: string;
  at: number;
}

export class JobRecords {
  readonly #store: Store;
  readonly #processId: string;
  readonly #leaseTtlMs: number;
  readonly #writeRetry: RetryTiming;
  readonly #now: () => number;

  constructor(o: { store: Store; processId: string; leaseTtlMs: number; writeRetry: RetryTiming; now: () => number }) {
    this.#store = o.store;
    this.#processId = o.processId;
    this.#leaseTtlMs = o.leaseTtlMs;
    this.#writeRetry = o.writeRetry;
    this.#now = o.now;
  }

  get(jobId: string): Promise<JobRecord | undefined> {
    return this.#store.kv.get<JobRecord>(jobKey(jobId)).then((job) => job ?? undefined);
  }

  /** Writes a record no run holds (a run's writes go through `persist`). */
  async put(job: JobRecord): Promise<void> {
    await this.#store.kv.set(jobKey(job.id), job, JOB_TTL_MS);
  }

  /**
   * Writes the run's job record; writes of one job are serialised, each writes the latest state.
   * A store error is retried, backing off, while the run holds the job (JobTiming.recordWriteRetry):
   * what the record holds (a task's provider id, a delivery) must not be lost to a dropped
   * connection, and is no reason to fail a task that the provider made. Written only while this
   * process holds the job's lease (Store.setWhileLeased): a write that finds it gone lands nowhere
   * and stops the run, whose job another process may be running.
   */
  persist(run: Run): Promise<void> {
    const write = run.writes.then(() => this.#writeRecord(run));
    run.writes = write.catch(() => undefined);
    return write;
  }

  async #writeRecord(run: Run): Promise<void> {
    const retry = this.#writeRetry;
    const started = performance.now();
    for (let delayMs = retry.firstDelayMs; ; delayMs = Math.min(delayMs * 2, retry.maxDelayMs)) {
      try {
        run.job.updatedAt = this.#now();
        const { id } = run.job;
        if (await this.#store.setWhileLeased(jobKey(id), run.job, JOB_TTL_MS, jobLeaseKey(id), this.#processId)) return;
        // The lease lapsed (another process took the job, or may): the record is not this run's to write.
        loseLease(run, 'the job lease was gone when its record was written; stopping here');
        throw new LeaseLostError();
      } catch (err) {
        // Abandoned (a lost lease or heartbeat): another process may hold the job, so no later write.
        if (run.abandon.signal.aborted || performance.now() - started + delayMs > retry.giveUpMs) throw err;
        run.log.warn({ err, retryInMs: delayMs }, 'could not write the job record; retrying');
        await sleep(delayMs, run.abandon.signal).catch(() => {
          throw err;
        });
      }
    }
  }

  /** The references prepared at submission (their files are under DATA_DIR/refs/<jobId>). */
  async saveReferences(jobId: string, prepared: PreparedReference[]): Promise<void> {
    await this.#store.kv.set(jobReferencesKey(jobId), prepared, JOB_TTL_MS);
  }

  references(jobId: string): Promise<PreparedReference[] | undefined> {
    return this.#store.kv.get<PreparedReference[]>(jobReferencesKey(jobId)).then((refs) => refs ?? undefined);
  }

  async forgetReferences(jobId: string): Promise<void> {
    await this.#store.kv.delete(jobReferencesKey(jobId));
  }

  /** Adds a job to its requester's history (the newest HISTORY_MAX_JOBS are kept). */
  remember(job: JobRecord): Promise<void> {
    return this.#store.recentPush(historyKey(job.request.requester), job.id, HISTORY_MAX_JOBS, JOB_TTL_MS);
  }

  /** A user's last jobs, newest first (those whose record is gone are left out). */
  async history(requester: Requester, limit: number): Promise<JobRecord[]> {
    const ids = (await this.#store.recentList(historyKey(requester))).slice(0, limit);
    const jobs = await Promise.all(ids.map((id) => this.get(id)));
    return jobs.filter((j): j is JobRecord => j !== undefined);
  }

  /**
   * Records a request to cancel the job, for whichever process holds it (now or after a restart):
   * it is read before each create is sent, at each lease renewal and before delivery. Set once;
   * lives as long as the job record.
   */
  async requestCancel(jobId: string, request: CancelRequest): Promise<void> {
    if (await this.cancelRequest(jobId)) return;
    await this.#store.kv.set(jobCancelKey(jobId), request, JOB_TTL_MS);
  }

  cancelRequest(jobId: string): Promise<CancelRequest | undefined> {
    return this.#store.kv.get<CancelRequest>(jobCancelKey(jobId)).then((r) => r ?? undefined);
  }

  /** The cancel requests of several jobs, in one read. */
  async cancelRequests(jobIds: readonly string[]): Promise<Array<CancelRequest | undefined>> {
    const requests = await this.#store.kv.getMany<CancelRequest>(jobIds.map(jobCancelKey));
    return requests.map((r) => r ?? undefined);
  }

  /**
   * Takes or renews this process's lease on the job; false when another live process holds it
   * (a holder whose heartbeat is gone is not live: its lease is taken). With `onlyIfFree`, a lease
   * another process holds is left to it even when its heartbeat is gone (until the lease expires).
   */
  lease(jobId: string, o: { onlyIfFree?: boolean } = {}): Promise<boolean> {
    return this.#store.lease(jobLeaseKey(jobId), this.#processId, this.#leaseTtlMs, o.onlyIfFree ? undefined : ALIVE_KEY_PREFIX);
  }

  /** Renews this process's leases on the jobs, in one round trip: whether it still holds each. */
  renewLeases(jobIds: readonly string[]): Promise<boolean[]> {
    return this.#store.leaseMany(jobIds.map(jobLeaseKey), this.#processId, this.#leaseTtlMs, ALIVE_KEY_PREFIX);
  }

  /**
   * Writes this process's heartbeat (for `ttlMs`) and its name in the processes set (again each
   * time: a peer that saw the heartbeat lapse, during a store outage, forgot the name).
   */
  async heartbeat(ttlMs: number): Promise<void> {
    await this.#store.lease(ALIVE_KEY_PREFIX + this.#processId, this.#processId, ttlMs);
    await this.#store.setAdd(PROCESSES_KEY, this.#processId);
  }

  /** Ends this process's heartbeat: peers see it stopped at their next look and take its jobs. */
  endHeartbeat(): Promise<void> {
    return this.#store.releaseLease(ALIVE_KEY_PREFIX + this.#processId, this.#processId);
  }

  /** The other processes in the set, split by whether their heartbeat lives. */
  async peers(): Promise<{ live: string[]; stopped: string[] }> {
    const others = (await this.#store.setMembers(PROCESSES_KEY)).filter((p) => p !== this.#processId);
    const holders = await Promise.all(others.map((p) => this.#store.leaseHolder(ALIVE_KEY_PREFIX + p)));
    return { live: others.filter((_, i) => holders[i] !== undefined), stopped: others.filter((_, i) => holders[i] === undefined) };
  }

  /** Drops a stopped process from the set once its jobs were swept. */
  forgetProcess(processId: string): Promise<void> {
    return this.#store.setRemove(PROCESSES_KEY, processId);
  }

  releaseLease(jobId: string): Promise<void> {
    return this.#store.releaseLease(jobLeaseKey(jobId), this.#processId);
  }

  /**
   * Takes a job admission could not finish back out of the store: out of the unfinished set first
   * (no sweep picks it up), then its record and references, then its lease.
   */
  async discard(jobId: string): Promise<void> {
    await this.markFinished(jobId);
    await this.#store.kv.delete(jobKey(jobId));
    await this.forgetReferences(jobId);
    await this.releaseLease(jobId);
  }

  markUnfinished(jobId: string): Promise<void> {
    return this.#store.setAdd(UNFINISHED_JOBS_KEY, jobId);
  }

  markFinished(jobId: string): Promise<void> {
    return this.#store.setRemove(UNFINISHED_JOBS_KEY, jobId);
  }

  unfinished(): Promise<string[]> {
    return this.#store.setMembers(UNFINISHED_JOBS_KEY);
  }
}
