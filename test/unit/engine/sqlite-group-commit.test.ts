/**
 * Group commit on a real SQLite file (WAL, as SqliteStore opens it): the writes of one turn of the
 * event loop are one transaction, each resolving once it is committed; a write that throws is
 * undone alone.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { GroupCommit, SHARED_FILE_COOLDOWN_MS } from '../../../src/engine/sqlite-group-commit.ts';

let dir: string;
let file: string;
const open: DatabaseSync[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'group-commit-'));
  file = join(dir, 'store.sqlite');
});
afterEach(async () => {
  for (const db of open.splice(0)) db.close();
  await rm(dir, { recursive: true, force: true });
});

/** A connection as SqliteStore makes one; `busyMs` is how long it waits for another's write lock. */
function connect(busyMs = 10_000): DatabaseSync {
  const db = new DatabaseSync(file);
  open.push(db);
  db.exec(`PRAGMA busy_timeout = ${busyMs}`);
  db.exec('PRAGMA journal_mode = WAL');
  db.exec('PRAGMA synchronous = NORMAL');
  db.exec('CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)');
  return db;
}

const upsert = (db: DatabaseSync, k: string, v: number) => () =>
  db.prepare('INSERT INTO t(k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v').run(k, v);
const rows = (db: DatabaseSync) => db.prepare('SELECT k, v FROM t ORDER BY k').all().map((r) => `${String(r.k)}=${String(r.v)}`);
const walBytes = async () => (await stat(`${file}-wal`)).size;

describe('GroupCommit', () => {
  it('commits the writes of one turn together, and resolves each only once another connection can read it', async () => {
    const db = connect();
    const reader = connect();
    const writes = new GroupCommit(db, file);
    await writes.write(upsert(db, 'a', 0));
    const before = await walBytes();

    const pending = Array.from({ length: 20 }, (_, n) => writes.write(upsert(db, 'a', n + 1)));
    // Not committed yet: another connection still reads the old value.
    expect(rows(reader)).toEqual(['a=0']);
    await Promise.all(pending);
    expect(rows(reader)).toEqual(['a=20']);
    // One transaction: the page went to the WAL once (4 KiB pages, plus a 24-byte frame header),
    // not once per write as twenty commits would have written it.
    expect(await walBytes()).toBeLessThan(before + 3 * (4096 + 24));
  });

  it('undoes a write that throws, rejects it alone, and commits the others of its turn', async () => {
    const db = connect();
    const writes = new GroupCommit(db, file);
    const first = writes.write(upsert(db, 'a', 1));
    const failing = writes.write(() => {
      upsert(db, 'b', 2)();
      throw new Error('half done');
    });
    const last = writes.write(upsert(db, 'c', 3));
    await expect(failing).rejects.toThrow('half done');
    await Promise.all([first, last]);
    expect(rows(connect())).toEqual(['a=1', 'c=3']);
  });

  it('lets two connections to one file in this thread write in the same turn (the first batch is committed first)', async () => {
    // A short busy wait: were the first batch still open, the second BEGIN would fail after it.
    const one = connect(200);
    const two = connect(200);
    const a = new GroupCommit(one, file);
    const b = new GroupCommit(two, file);
    await Promise.all([a.write(upsert(one, 'a', 1)), b.write(upsert(two, 'b', 2)), a.write(upsert(one, 'c', 3))]);
    expect(rows(connect())).toEqual(['a=1', 'b=2', 'c=3']);
  });

  it('rejects every write of a turn whose commit fails', async () => {
    const db = connect();
    // A deferred foreign key is checked at COMMIT: a broken one makes the commit itself fail.
    db.exec('PRAGMA foreign_keys = ON');
    db.exec('CREATE TABLE child (p TEXT REFERENCES t(k) DEFERRABLE INITIALLY DEFERRED)');
    const writes = new GroupCommit(db, file);
    const pending = [
      writes.write(upsert(db, 'a', 1)),
      writes.write(() => db.prepare("INSERT INTO child(p) VALUES ('missing')").run()),
      writes.write(upsert(db, 'b', 2)),
    ];
    for (const p of pending) await expect(p).rejects.toThrow(/FOREIGN KEY/);
    expect(rows(connect())).toEqual([]);
  });

  it('commits each write to an in-memory database at once, still undoing one that throws', async () => {
    const db = new DatabaseSync(':memory:');
    open.push(db);
    db.exec('CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)');
    const writes = new GroupCommit(db, undefined);
    const pending = writes.write(upsert(db, 'a', 1));
    expect(db.isTransaction).toBe(false);
    await pending;
    await expect(
      writes.write(() => {
        upsert(db, 'b', 2)();
        throw new Error('half done');
      }),
    ).rejects.toThrow('half done');
    expect(rows(db)).toEqual(['a=1']);
  });

  it('commits each write on its own for a while once its BEGIN waited for another process (a shared file)', async () => {
    const db = connect();
    let later = 0;
    // Its very first BEGIN meets the lock: nothing before it has set the connection's busy timeout.
    const writes = new GroupCommit(db, file, { now: () => performance.now() + later });
    expect(writes.grouping).toBe(true);
    // Another process's transaction holds the write lock for 200 ms (a worker thread: its own connection and loop).
    const holder = new Worker(
      `const { DatabaseSync } = require('node:sqlite');
       const { parentPort, workerData } = require('node:worker_threads');
       const db = new DatabaseSync(workerData);
       db.exec('BEGIN IMMEDIATE');
       parentPort.postMessage('locked');
       Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
       db.exec('COMMIT');
       db.close();`,
      { eval: true, workerData: file },
    );
    const exited = once(holder, 'exit');
    await once(holder, 'message');
    await writes.write(upsert(db, 'b', 2)); // waits for the lock, then goes through
    expect(writes.grouping).toBe(false);
    const alone = writes.write(upsert(db, 'c', 3));
    // Committed at once, in a transaction of its own: no batch holds the lock into the next turn.
    expect(db.isTransaction).toBe(false);
    await alone;
    expect(rows(connect())).toEqual(['b=2', 'c=3']);
    await exited;
    // Grouping again once the cooldown has passed without another wait.
    later = SHARED_FILE_COOLDOWN_MS;
    expect(writes.grouping).toBe(true);
    const grouped = writes.write(upsert(db, 'd', 4));
    expect(db.isTransaction).toBe(true);
    await grouped;
  });

  it('rejects every write of the turn when SQLite rolls the whole transaction back, and goes on with a new one', async () => {
    const db = connect();
    db.exec("CREATE TRIGGER refuse BEFORE INSERT ON t WHEN NEW.k = 'boom' BEGIN SELECT RAISE(ROLLBACK, 'refused by the trigger'); END");
    const writes = new GroupCommit(db, file);
    const first = writes.write(upsert(db, 'a', 1));
    const boom = writes.write(upsert(db, 'boom', 2));
    const after = writes.write(upsert(db, 'c', 3));
    await expect(first).rejects.toThrow('refused by the trigger');
    await expect(boom).rejects.toThrow('refused by the trigger');
    await after;
    expect(rows(connect())).toEqual(['c=3']);
  });
});
