/**
 * Group commit for the SQLite store: the writes made during one turn of the event loop share one
 * transaction, committed once the turn's I/O callbacks have run (setImmediate), and each write's
 * promise settles only after that commit. A caller that awaits a write therefore never acts on
 * something the file does not hold, as with one commit per write; the commits are fewer.
 *
 * Why: with one commit per write, a Slack job's ~19 commits cost the main thread about 40–50 µs
 * each inside the running bot (the transaction's lock, the WAL frames and the WAL index), more
 * than its statements did. Batched, a write costs its statement and a savepoint
 * (`npm run bench -- records` measures both ways side by side; `npm run bench -- jobs` the bot).
 *
 * Each write runs in a SAVEPOINT of the batch's transaction: one that throws undoes its own
 * changes and rejects alone; the batch goes on. An error after which SQLite rolled back the
 * whole transaction (docs/architecture.md "Store"), a savepoint that cannot be undone or
 * released, and a failed COMMIT each reject every write of the batch: none of them is in the
 * file. Reads on the same connection see a batch's writes before the commit (SQLite shows a
 * connection its own transaction); only the writes' callers wait for it.
 *
 * The transaction begins IMMEDIATE, taking the write lock at once: a write that reads before it
 * writes (a guard, a lease) sees the file as no other process can change it until the commit.
 *
 * A file other processes write too (several bots on one file, the CLI): a batch holds the write
 * lock for the rest of a turn, and SQLite's busy wait blocks the waiting process's whole thread.
 * Two busy processes then spend their turns waiting on each other. So each BEGIN first tries
 * without waiting (busy_timeout 0): one that finds the lock taken (SQLITE_BUSY) waits for it as
 * usual, and switches this connection to one transaction per write, as before group commit, for
 * SHARED_FILE_COOLDOWN_MS; each process that meets the other's lock switches. Another connection
 * to the same file in THIS thread could not wait at all (its busy wait would block the very loop
 * whose turn must end), so opening a batch first commits any other open batch on that file here.
 *
 * An in-memory database is never grouped: no other connection can read it and it does not outlive
 * the process, so each write is its own transaction and resolves at once.
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite';
// Not the global: tests that fake timers replace that one, and the commit must still come.
import { setImmediate as afterThisTurn } from 'node:timers';

/** SQLite's primary result code for a lock held by another connection (its low byte; extended codes carry it). */
const SQLITE_BUSY = 5;
/** After such a wait, each write is its own transaction for this long; then grouping is tried again. */
export const SHARED_FILE_COOLDOWN_MS = 10 * 60_000;

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** This thread's group commits with a batch open. */
const openBatches = new Set<GroupCommit>();

export class GroupCommit {
  /** The database file; undefined for an in-memory database (no other connection can share it). */
  readonly file: string | undefined;
  readonly #db: DatabaseSync;
  readonly #now: () => number;
  readonly #savepoint: StatementSync;
  readonly #release: StatementSync;
  readonly #rollbackTo: StatementSync;
  /** The connection's own busy_timeout (read when this was made), restored after each BEGIN's try without waiting. */
  readonly #busyTimeoutMs: number;
  /** The open batch's writes, waiting for its commit; undefined when no transaction is open. */
  #batch: Waiter[] | undefined;
  /** Until then (#now), each write is its own transaction: another process was seen writing the file. */
  #aloneUntil = 0;

  constructor(db: DatabaseSync, file: string | undefined, opts: { now?: () => number } = {}) {
    this.#db = db;
    this.file = file;
    this.#now = opts.now ?? (() => performance.now());
    this.#savepoint = db.prepare('SAVEPOINT write');
    this.#release = db.prepare('RELEASE write');
    this.#rollbackTo = db.prepare('ROLLBACK TO write');
    this.#busyTimeoutMs = Number((db.prepare('PRAGMA busy_timeout').get() as { timeout: number }).timeout);
  }

  /** Whether writes are being grouped now (false: each is its own transaction). */
  get grouping(): boolean {
    return this.file !== undefined && this.#now() >= this.#aloneUntil;
  }

  /** Runs `fn` (synchronous SQL) in this turn's transaction; resolves with its result once that is committed. */
  write<T>(fn: () => T): Promise<T> {
    // The batch's transaction ended outside a write (SQLite rolled it back after a failed read): its writes are lost.
    if (this.#batch && !this.#db.isTransaction) this.#abandon(new Error('the SQLite transaction of this turn ended before its commit'));
    if (!this.#batch && !this.grouping) return this.#alone(fn);
    let result: T;
    let batch: Waiter[];
    try {
      batch = this.#open();
      this.#savepoint.run();
      try {
        result = fn();
      } catch (err) {
        this.#undo(err);
        throw err;
      }
    } catch (err) {
      return Promise.reject(err);
    }
    try {
      this.#release.run();
    } catch (err) {
      // Its changes could be neither kept apart nor undone: the whole batch goes.
      this.#abandon(err);
      return Promise.reject(err);
    }
    return new Promise<T>((resolve, reject) => batch.push({ resolve: () => resolve(result), reject }));
  }

  /** Commits the open batch now (the store closing). */
  flush(): void {
    const batch = this.#batch;
    if (!batch) return;
    this.#batch = undefined;
    openBatches.delete(this);
    try {
      this.#db.exec('COMMIT');
    } catch (err) {
      try {
        if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      } catch {
        // The COMMIT's error is the one to report.
      }
      for (const w of batch) w.reject(err);
      return;
    }
    for (const w of batch) w.resolve();
  }

  /** `fn` in a transaction of its own (BEGIN IMMEDIATE, rolled back if it throws). */
  #alone<T>(fn: () => T): Promise<T> {
    try {
      this.#begin();
      try {
        const result = fn();
        this.#db.exec('COMMIT');
        return Promise.resolve(result);
      } catch (err) {
        if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
        throw err;
      }
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** BEGIN IMMEDIATE; one that finds another connection holding the lock waits for it, and stops the grouping for a while. */
  #begin(): void {
    if (this.file === undefined) {
      this.#db.exec('BEGIN IMMEDIATE');
      return;
    }
    for (const other of openBatches) if (other !== this && other.file === this.file) other.flush();
    // exec, not a prepared PRAGMA: SQLite applies a PRAGMA when it is prepared, not when it runs.
    this.#db.exec('PRAGMA busy_timeout = 0');
    try {
      this.#db.exec('BEGIN IMMEDIATE');
      return;
    } catch (err) {
      if ((Number((err as { errcode?: unknown }).errcode) & 0xff) !== SQLITE_BUSY) throw err;
      this.#aloneUntil = this.#now() + SHARED_FILE_COOLDOWN_MS;
    } finally {
      this.#db.exec(`PRAGMA busy_timeout = ${this.#busyTimeoutMs}`);
    }
    this.#db.exec('BEGIN IMMEDIATE');
  }

  #open(): Waiter[] {
    if (this.#batch) return this.#batch;
    this.#begin();
    const batch: Waiter[] = [];
    this.#batch = batch;
    openBatches.add(this);
    afterThisTurn(() => {
      // Already committed (flush) or abandoned: a later batch has its own commit scheduled.
      if (this.#batch === batch) this.flush();
    });
    return batch;
  }

  /** A write threw: its own changes are undone; if SQLite rolled back the whole transaction, or they cannot be undone, the batch is lost. */
  #undo(err: unknown): void {
    if (this.#db.isTransaction) {
      try {
        this.#rollbackTo.run();
        this.#release.run();
        return;
      } catch {
        // Left in place, its partial changes would be committed with the batch.
      }
    }
    this.#abandon(err);
  }

  /** Rolls back the open batch (if SQLite has not already) and rejects every write of it. */
  #abandon(err: unknown): void {
    const batch = this.#batch;
    this.#batch = undefined;
    openBatches.delete(this);
    try {
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
    } catch {
      // The error that ended the batch is the one to report.
    }
    for (const w of batch ?? []) w.reject(err);
  }
}
