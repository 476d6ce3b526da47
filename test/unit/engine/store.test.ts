/**
 * The Store contract, run against both backends: SQLite (a real file in a temp dir) and Redis
 * (REDIS_URL, a unique key prefix per run, deleted afterwards).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomUUID } from 'node:crypto';
import { DatabaseSync, StatementSync } from 'node:sqlite';
import { defaultSerialize } from '@keyv/serialize';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../../src/log.ts';
import { openStore } from '../../../src/engine/open-store.ts';
import { convertKvTable, sqlitePathFromUrl } from '../../../src/engine/store-sqlite.ts';
import { recordText, type Store } from '../../../src/engine/store.ts';
import { deleteRedisKeys, REDIS_URL } from '../../support/index.ts';

const log = createLogger({ level: 'silent' });
const RUN_PREFIX = `test-store-${randomUUID()}:`;
const tempDir = mkdtempSync(join(tmpdir(), 'imagine-store-'));

afterAll(async () => {
  rmSync(tempDir, { recursive: true, force: true });
  await deleteRedisKeys(RUN_PREFIX);
});

interface Backend {
  name: string;
  /** Opens a store on the backend's shared location (same file / same server) with this key prefix. */
  open(prefix: string): Promise<Store>;
}

const sqliteFile = join(tempDir, 'contract.sqlite');
const BACKENDS: Backend[] = [
  { name: 'sqlite', open: (prefix) => openStore(`sqlite://${sqliteFile}`, { log, keyPrefix: `${RUN_PREFIX}${prefix}` }) },
  { name: 'redis', open: (prefix) => openStore(REDIS_URL, { log, keyPrefix: `${RUN_PREFIX}${prefix}` }) },
];

describe.each(BACKENDS)('Store contract on $name', (backend) => {
  let store: Store;
  const opened: Store[] = [];
  let testNo = 0;
  const openFresh = async (suffix = '') => {
    const s = await backend.open(`${backend.name}-${testNo}${suffix}:`);
    opened.push(s);
    return s;
  };

  // Each test gets its own key prefix, so no test sees another's data.
  const fresh = async () => {
    testNo += 1;
    store = await openFresh();
    return store;
  };
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close()));
  });

  it("reads records an older version wrote with Keyv's default serializer, and strings starting with ':' stay as they were", async () => {
    await fresh();
    const record = { prompt: ':smile: a cat', nested: { tag: '::x', n: 1, list: [':a', 'b'] }, none: null };
    const ours = store.kv.serialize;
    store.kv.serialize = defaultSerialize;
    await store.kv.set('written-before', record);
    store.kv.serialize = ours;
    // What reaches the backend: the native JSON form, marked as such.
    const written: string[] = [];
    store.kv.hooks.addHandler('postSet', (data: { value: string }) => void written.push(data.value));
    await store.kv.set('written-now', record);
    expect(written[0]?.startsWith('{"json":1,"value":')).toBe(true);
    expect(await store.kv.get('written-before')).toEqual(record);
    expect(await store.kv.get('written-now')).toEqual(record);
  });

  it('keeps kv records: set, get, has, delete', async () => {
    await fresh();
    const job = { id: 'j1', prompt: 'a cat', images: [{ w: 1024 }], state: 'running' };
    expect(await store.kv.get('job:j1')).toBeUndefined();
    expect(await store.kv.set('job:j1', job)).toBe(true);
    expect(await store.kv.get('job:j1')).toEqual(job);
    expect(await store.kv.has('job:j1')).toBe(true);
    await store.kv.set('job:j1', { ...job, state: 'succeeded' });
    expect(await store.kv.get<{ state: string }>('job:j1')).toMatchObject({ state: 'succeeded' });
    expect(await store.kv.delete('job:j1')).toBe(true);
    expect(await store.kv.get('job:j1')).toBeUndefined();
    expect(await store.kv.has('job:j1')).toBe(false);
  });

  it('expires kv records after their TTL', async () => {
    await fresh();
    await store.kv.set('short', 'soon gone', 80);
    await store.kv.set('long', 'stays', 60_000);
    await store.kv.set('forever', 'stays');
    expect(await store.kv.get('short')).toBe('soon gone');
    await sleep(150);
    expect(await store.kv.get('short')).toBeUndefined();
    expect(await store.kv.has('short')).toBe(false);
    expect(await store.kv.get('long')).toBe('stays');
    expect(await store.kv.get('forever')).toBe('stays');
  });

  it('keeps stores with different key prefixes apart, even through kv.clear()', async () => {
    await fresh();
    const other = await openFresh('-other');
    await store.kv.set('job:x', 'mine');
    await other.kv.set('job:x', 'theirs');
    await store.add('c', 3, Date.now() + 60_000);
    expect(await other.read('c')).toBe(0);
    await store.kv.clear();
    expect(await store.kv.get('job:x')).toBeUndefined();
    expect(await other.kv.get('job:x')).toBe('theirs');
  });

  it('adds to a counter only within the limit', async () => {
    await fresh();
    const exp = Date.now() + 60_000;
    expect(await store.read('units')).toBe(0);
    expect(await store.addIfWithin('units', 3, 5, exp)).toBe(3);
    expect(await store.addIfWithin('units', 3, 5, exp)).toBeNull();
    expect(await store.read('units')).toBe(3);
    expect(await store.addIfWithin('units', 2, 5, exp)).toBe(5);
    expect(await store.addIfWithin('units', 1, 5, exp)).toBeNull();
    expect(await store.read('units')).toBe(5);
    // A fresh counter refuses a delta larger than the limit and stays absent.
    expect(await store.addIfWithin('big', 6, 5, exp)).toBeNull();
    expect(await store.read('big')).toBe(0);
    expect(await store.addIfWithin('big', 5, 5, exp)).toBe(5);
  });

  it('adds positive and negative deltas without a limit', async () => {
    await fresh();
    const exp = Date.now() + 60_000;
    expect(await store.add('n', 7, exp)).toBe(7);
    expect(await store.add('n', -3, exp)).toBe(4);
    expect(await store.read('n')).toBe(4);
    // A negative counter makes room under the limit (the contract is plain arithmetic).
    expect(await store.add('neg', -2, exp)).toBe(-2);
    expect(await store.addIfWithin('neg', 6, 5, exp)).toBe(4);
  });

  it('treats an expired counter as 0', async () => {
    await fresh();
    expect(await store.addIfWithin('day', 5, 5, Date.now() + 80)).toBe(5);
    expect(await store.addIfWithin('day', 1, 5, Date.now() + 80)).toBeNull();
    await sleep(150);
    expect(await store.read('day')).toBe(0);
    expect(await store.addIfWithin('day', 5, 5, Date.now() + 60_000)).toBe(5);
    await store.add('other', 4, Date.now() + 80);
    await sleep(150);
    expect(await store.add('other', 1, Date.now() + 60_000)).toBe(1);
  });

  it('never goes over the limit under concurrent addIfWithin', async () => {
    await fresh();
    const exp = Date.now() + 60_000;
    const results = await Promise.all(Array.from({ length: 60 }, () => store.addIfWithin('race', 1, 7, exp)));
    expect(results.filter((r) => r !== null)).toHaveLength(7);
    expect(results.filter((r) => r !== null).sort((a, b) => Number(a) - Number(b))).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(await store.read('race')).toBe(7);
  });

  it('sets a key only once until it expires (setIfAbsent)', async () => {
    await fresh();
    expect(await store.setIfAbsent('callback:abc', '1', 80)).toBe(true);
    expect(await store.setIfAbsent('callback:abc', '1', 80)).toBe(false);
    const concurrent = await Promise.all(Array.from({ length: 20 }, () => store.setIfAbsent('callback:def', '1', 60_000)));
    expect(concurrent.filter(Boolean)).toHaveLength(1);
    await sleep(150);
    expect(await store.setIfAbsent('callback:abc', '1', 80)).toBe(true);
  });

  it('applies a counter change and sets its guard together, exactly once (addOnce)', async () => {
    await fresh();
    const exp = Date.now() + 60_000;
    await store.add('units', 5, exp);
    expect(await store.addOnce('refund:job1', 60_000, 'units', -2, exp)).toBe(true);
    expect(await store.read('units')).toBe(3);
    // A retry (a resumed job settling again) changes nothing.
    expect(await store.addOnce('refund:job1', 60_000, 'units', -2, exp)).toBe(false);
    expect(await store.read('units')).toBe(3);
    // The guard is a setIfAbsent key, both ways.
    expect(await store.setIfAbsent('refund:job1', 'x', 60_000)).toBe(false);
    expect(await store.setIfAbsent('refund:job2', 'x', 60_000)).toBe(true);
    expect(await store.addOnce('refund:job2', 60_000, 'units', -1, exp)).toBe(false);
    expect(await store.read('units')).toBe(3);
    // Another guard, another change; positive deltas and a missing counter work too.
    expect(await store.addOnce('charge:job3', 60_000, 'units', 4, exp)).toBe(true);
    expect(await store.read('units')).toBe(7);
    expect(await store.addOnce('charge:job4', 60_000, 'fresh', 2, exp)).toBe(true);
    expect(await store.read('fresh')).toBe(2);
  });

  it('stops a negative addOnce at the floor, and treats an expired counter as 0', async () => {
    await fresh();
    const exp = Date.now() + 60_000;
    await store.add('units', 1, exp);
    expect(await store.addOnce('g1', 60_000, 'units', -3, exp, 0)).toBe(true);
    expect(await store.read('units')).toBe(0);
    expect(await store.addOnce('g2', 60_000, 'missing', -2, exp, 0)).toBe(true);
    expect(await store.read('missing')).toBe(0);
    // Without a floor it is plain arithmetic.
    expect(await store.addOnce('g3', 60_000, 'units', -2, exp)).toBe(true);
    expect(await store.read('units')).toBe(-2);
    await store.add('short', 9, Date.now() + 80);
    await sleep(150);
    expect(await store.addOnce('g4', 60_000, 'short', 1, exp)).toBe(true);
    expect(await store.read('short')).toBe(1);
  });

  it('lets one of many concurrent addOnce calls with one guard through, across two stores', async () => {
    await fresh();
    // A second connection on the same prefix: another process.
    const twin = await backend.open(`${backend.name}-${testNo}:`);
    opened.push(twin);
    const exp = Date.now() + 60_000;
    await store.add('units', 10, exp);
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? store : twin).addOnce('refund:race', 60_000, 'units', -3, exp, 0)),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await store.read('units')).toBe(7);
    expect(await twin.read('units')).toBe(7);
  });

  it('applies addOnce again only after its guard expires', async () => {
    await fresh();
    const exp = Date.now() + 60_000;
    expect(await store.addOnce('g', 80, 'n', 1, exp)).toBe(true);
    expect(await store.addOnce('g', 80, 'n', 1, exp)).toBe(false);
    await sleep(150);
    expect(await store.addOnce('g', 80, 'n', 1, exp)).toBe(true);
    expect(await store.read('n')).toBe(2);
  });

  it('keeps set members', async () => {
    await fresh();
    expect(await store.setMembers('unfinished')).toEqual([]);
    await store.setAdd('unfinished', 'job-b');
    await store.setAdd('unfinished', 'job-a');
    await store.setAdd('unfinished', 'job-a');
    await store.setAdd('elsewhere', 'job-z');
    expect((await store.setMembers('unfinished')).sort()).toEqual(['job-a', 'job-b']);
    await store.setRemove('unfinished', 'job-b');
    await store.setRemove('unfinished', 'not-there');
    expect(await store.setMembers('unfinished')).toEqual(['job-a']);
    expect(await store.setMembers('elsewhere')).toEqual(['job-z']);
  });

  it("addMany: a set's members expire together, each addition moving the whole set's expiry, later or earlier", async () => {
    await fresh();
    const now = Date.now();
    await store.addMany([], [{ key: 'seen', member: 'u1', expiresAt: now + 400 }]);
    await store.addMany([], [{ key: 'seen', member: 'u2', expiresAt: now + 60_000 }]);
    await sleep(500);
    // u1 was added with the earlier expiry; u2's addition moved it.
    expect(await store.expiringMembers('seen')).toEqual(['u1', 'u2']);
    await store.addMany([], [{ key: 'seen', member: 'u3', expiresAt: Date.now() + 300 }]);
    await store.addMany([], [{ key: 'seen', member: 'u3', expiresAt: Date.now() + 300 }]);
    expect(await store.expiringMembers('seen')).toEqual(['u1', 'u2', 'u3']);
    await sleep(400);
    expect(await store.expiringMembers('seen')).toEqual([]);
    // An expired set starts afresh.
    await store.addMany([], [{ key: 'seen', member: 'u9', expiresAt: Date.now() + 60_000 }]);
    expect(await store.expiringMembers('seen')).toEqual(['u9']);
  });

  it('keeps a bounded list of recent members, newest first, that expires after its last push', async () => {
    await fresh();
    expect(await store.recentList('history:u1')).toEqual([]);
    for (const id of ['j1', 'j2', 'j3', 'j4']) await store.recentPush('history:u1', id, 3, 60_000);
    await store.recentPush('history:u2', 'other', 3, 60_000);
    expect(await store.recentList('history:u1')).toEqual(['j4', 'j3', 'j2']);
    // Pushed again: moves to the front, no duplicate.
    await store.recentPush('history:u1', 'j2', 3, 60_000);
    expect(await store.recentList('history:u1')).toEqual(['j2', 'j4', 'j3']);
    expect(await store.recentList('history:u2')).toEqual(['other']);
    await store.recentPush('history:u3', 'short', 3, 80);
    await sleep(150);
    expect(await store.recentList('history:u3')).toEqual([]);
    // An expired list starts afresh: a push does not bring its old members back.
    await store.recentPush('history:u3', 'again', 3, 60_000);
    expect(await store.recentList('history:u3')).toEqual(['again']);
  });

  it('keeps a recent list exact under concurrent pushes', async () => {
    await fresh();
    await Promise.all(Array.from({ length: 30 }, (_, i) => store.recentPush('history:race', `j${i}`, 50, 60_000)));
    expect((await store.recentList('history:race')).sort()).toEqual(Array.from({ length: 30 }, (_, i) => `j${i}`).sort());
  });

  it('gives a lease to one owner, renews it, and lets another take it only after it expires', async () => {
    await fresh();
    expect(await store.lease('job:1', 'proc-a', 300)).toBe(true);
    expect(await store.lease('job:1', 'proc-b', 300)).toBe(false);
    // A renewal keeps it alive past the first TTL.
    await sleep(150);
    expect(await store.lease('job:1', 'proc-a', 300)).toBe(true);
    await sleep(200);
    expect(await store.lease('job:1', 'proc-b', 300)).toBe(false);
    // proc-a stops renewing: proc-b steals it, and proc-a has lost it.
    await sleep(350);
    expect(await store.lease('job:1', 'proc-b', 60_000)).toBe(true);
    expect(await store.lease('job:1', 'proc-a', 60_000)).toBe(false);
    // Only the holder can release.
    await store.releaseLease('job:1', 'proc-a');
    expect(await store.lease('job:1', 'proc-c', 60_000)).toBe(false);
    await store.releaseLease('job:1', 'proc-b');
    expect(await store.lease('job:1', 'proc-c', 60_000)).toBe(true);
  });

  it('with an alive prefix, takes a live lease whose holder has no live heartbeat lease, atomically', async () => {
    await fresh();
    expect(await store.leaseHolder('job:1')).toBeUndefined();
    // proc-a holds the job and heart-beats.
    expect(await store.lease('alive:proc-a', 'proc-a', 300)).toBe(true);
    expect(await store.lease('job:1', 'proc-a', 60_000)).toBe(true);
    expect(await store.leaseHolder('job:1')).toBe('proc-a');
    expect(await store.leaseHolder('alive:proc-a')).toBe('proc-a');
    // While proc-a's heartbeat lives, its job lease stays its own, with or without the prefix.
    expect(await store.lease('job:1', 'proc-b', 60_000, 'alive:')).toBe(false);
    expect(await store.lease('job:1', 'proc-b', 60_000)).toBe(false);
    // proc-a stops heart-beating: its 60 s job lease is taken at once, but only with the prefix.
    await sleep(400);
    expect(await store.leaseHolder('alive:proc-a')).toBeUndefined();
    expect(await store.lease('job:1', 'proc-b', 60_000)).toBe(false);
    expect(await store.lease('job:1', 'proc-b', 60_000, 'alive:')).toBe(true);
    expect(await store.leaseHolder('job:1')).toBe('proc-b');
    // proc-a has lost it (its renewal fails); proc-b's heartbeat is missing too, but the holder renews its own.
    expect(await store.lease('job:1', 'proc-a', 60_000)).toBe(false);
    expect(await store.lease('job:1', 'proc-b', 60_000, 'alive:')).toBe(true);
    // A released heartbeat counts as dead at once.
    expect(await store.lease('alive:proc-b', 'proc-b', 60_000)).toBe(true);
    expect(await store.lease('job:1', 'proc-c', 60_000, 'alive:')).toBe(false);
    await store.releaseLease('alive:proc-b', 'proc-b');
    expect(await store.lease('job:1', 'proc-c', 60_000, 'alive:')).toBe(true);
  });

  it('leaseMany takes or renews each key as lease() would, in one call, and answers per key in order', async () => {
    await fresh();
    expect(await store.leaseMany([], 'proc-a', 60_000, 'alive:')).toEqual([]);
    expect(await store.lease('alive:proc-b', 'proc-b', 60_000)).toBe(true);
    expect(await store.lease('job:b', 'proc-b', 60_000)).toBe(true); // a live peer's
    expect(await store.lease('job:dead', 'proc-dead', 60_000)).toBe(true); // a dead peer's (no heartbeat)
    expect(await store.lease('job:a', 'proc-a', 60_000)).toBe(true); // already ours
    const keys = ['job:free', 'job:b', 'job:dead', 'job:a'];
    expect(await store.leaseMany(keys, 'proc-a', 60_000)).toEqual([true, false, false, true]);
    expect(await store.leaseMany(keys, 'proc-a', 60_000, 'alive:')).toEqual([true, false, true, true]);
    expect(await Promise.all(keys.map((k) => store.leaseHolder(k)))).toEqual(['proc-a', 'proc-b', 'proc-a', 'proc-a']);
    // More keys than one Redis script call takes: answered all the same, in order.
    const many = Array.from({ length: 1_203 }, (_, i) => `job:many-${i}`);
    expect(await store.lease('job:many-1000', 'proc-b', 60_000)).toBe(true);
    const held = await store.leaseMany(many, 'proc-a', 60_000, 'alive:');
    expect(held.filter((h) => !h)).toHaveLength(1);
    expect(held[1_000]).toBe(false);
    // Renewed: the ttl is the new one.
    expect(await store.leaseMany(['job:a'], 'proc-a', 200)).toEqual([true]);
    await sleep(300);
    expect(await store.leaseHolder('job:a')).toBeUndefined();
  });

  it('setWhileLeased writes a record as kv.set would, only while the owner holds the lease', async () => {
    await fresh();
    const record = { id: 'j1', state: 'running', tasks: [{ index: 0, taskId: 't1' }] };
    // Nobody holds the lease (never taken, or expired): nothing written.
    expect(await store.setWhileLeased('job:j1', record, 60_000, 'lease:job:j1', 'proc-a')).toBe(false);
    expect(await store.kv.get('job:j1')).toBeUndefined();
    expect(await store.lease('lease:job:j1', 'proc-a', 60_000)).toBe(true);
    expect(await store.setWhileLeased('job:j1', record, 60_000, 'lease:job:j1', 'proc-a')).toBe(true);
    expect(await store.kv.get('job:j1')).toEqual(record);
    // Another process took the job: the old holder's write does not land over the new holder's.
    await store.releaseLease('lease:job:j1', 'proc-a');
    expect(await store.lease('lease:job:j1', 'proc-b', 60_000)).toBe(true);
    await store.kv.set('job:j1', { ...record, state: 'succeeded' });
    expect(await store.setWhileLeased('job:j1', { ...record, state: 'queued' }, 60_000, 'lease:job:j1', 'proc-a')).toBe(false);
    expect(await store.kv.get('job:j1')).toEqual({ ...record, state: 'succeeded' });
    // The record expires after its ttl, as kv.set's does.
    expect(await store.setWhileLeased('job:j1', record, 150, 'lease:job:j1', 'proc-b')).toBe(true);
    await sleep(250);
    expect(await store.kv.get('job:j1')).toBeUndefined();
    // An expired lease is not held.
    expect(await store.lease('lease:job:j2', 'proc-a', 100)).toBe(true);
    await sleep(200);
    expect(await store.setWhileLeased('job:j2', record, 60_000, 'lease:job:j2', 'proc-a')).toBe(false);
  });

  it('getNow (SQLite only: it reads synchronously) gives what kv.get resolves to: a record, a missing one, an expired one, an older format', async () => {
    await fresh();
    if (backend.name === 'redis') {
      expect(store.getNow).toBeUndefined();
      return;
    }
    const getNow = (key: string) => store.getNow!(key);
    const record = { private: true, nested: { list: [':a', 1] } };
    await store.kv.set('prefs:u1', record);
    expect(getNow('prefs:u1')).toEqual(await store.kv.get('prefs:u1'));
    expect(getNow('prefs:u1')).toEqual(record);
    expect(getNow('prefs:nobody')).toBeUndefined();
    // Written by an older version with Keyv's default serializer.
    const ours = store.kv.serialize;
    store.kv.serialize = defaultSerialize;
    await store.kv.set('prefs:old', { model: ':x' });
    store.kv.serialize = ours;
    expect(getNow('prefs:old')).toEqual({ model: ':x' });
    // Expired, as kv.get sees it.
    await store.kv.set('prefs:short', record, 100);
    await sleep(200);
    expect(getNow('prefs:short')).toBeUndefined();
    expect(await store.kv.get('prefs:short')).toBeUndefined();
  });

  it('shares data between two stores opened on the same backend (two processes)', async () => {
    await fresh();
    const second = await backend.open(`${backend.name}-${testNo}:`);
    opened.push(second);
    const exp = Date.now() + 60_000;
    await store.kv.set('job:shared', { ok: true });
    expect(await second.kv.get('job:shared')).toEqual({ ok: true });
    expect(await store.addIfWithin('c', 4, 5, exp)).toBe(4);
    expect(await second.addIfWithin('c', 2, 5, exp)).toBeNull();
    expect(await second.addIfWithin('c', 1, 5, exp)).toBe(5);
    expect(await store.lease('l', 'a', 60_000)).toBe(true);
    expect(await second.lease('l', 'b', 60_000)).toBe(false);
  });
});

describe('SQLite store file', () => {
  it("an addition to a large set whose expiry stays changes one row, not the set's every row (the usage ledger's sets: one per server and day)", async () => {
    const store = await openStore(`sqlite://${join(tempDir, 'large-set.sqlite')}`, { log });
    const expiresAt = Date.now() + 60_000;
    const key = 'usage-index:day:u';
    try {
      for (let i = 0; i < 3_000; i += 100) {
        await store.addMany([], Array.from({ length: 100 }, (_, j) => ({ key, member: `user-${String(i + j).padStart(5, '0')}`, expiresAt })));
      }
      // What SQLite reports each statement changed (node:sqlite's run() result).
      const run = vi.spyOn(StatementSync.prototype, 'run');
      try {
        await store.addMany([], [{ key, member: 'user-new', expiresAt }]);
        const changed = run.mock.results.map((r) => Number((r.value as { changes: number | bigint }).changes));
        // Rewriting every row's (unchanged) expiry changed 3,000 rows per addition: CPU on the
        // event loop for each user seen that day.
        expect(Math.max(...changed)).toBe(1);
      } finally {
        run.mockRestore();
      }
      expect(await store.expiringMembers(key)).toHaveLength(3_001);
      // A later expiry still moves the whole set.
      await store.addMany([], [{ key, member: 'user-later', expiresAt: expiresAt + 1 }]);
      const other = new DatabaseSync(join(tempDir, 'large-set.sqlite'));
      try {
        const expiries = other.prepare('SELECT DISTINCT expires_at FROM expiring_members').all() as { expires_at: number }[];
        expect(expiries.map((r) => Number(r.expires_at))).toEqual([expiresAt + 1]);
      } finally {
        other.close();
      }
    } finally {
      await store.close();
    }
  });

  it('keeps records, counters, sets and leases across close and reopen', async () => {
    const url = `sqlite://${join(tempDir, 'reopen.sqlite')}`;
    const exp = Date.now() + 60_000;
    const first = await openStore(url, { log });
    await first.kv.set('job:1', { prompt: 'a lighthouse' });
    await first.addIfWithin('quota', 3, 10, exp);
    await first.setAdd('unfinished', 'job:1');
    await first.lease('job:1', 'proc-a', 60_000);
    await first.setIfAbsent('once', 'x', 60_000);
    await first.close();

    const second = await openStore(url, { log });
    try {
      expect(await second.kv.get('job:1')).toEqual({ prompt: 'a lighthouse' });
      expect(await second.read('quota')).toBe(3);
      expect(await second.setMembers('unfinished')).toEqual(['job:1']);
      expect(await second.lease('job:1', 'proc-b', 60_000)).toBe(false);
      expect(await second.setIfAbsent('once', 'x', 60_000)).toBe(false);
    } finally {
      await second.close();
    }
  });

  it("converts an older version's WITHOUT ROWID records table to a rowid table, records and expiry kept", async () => {
    const path = join(tempDir, `older-${randomUUID()}.sqlite`);
    // The table as versions before this one created it, with one live and one expired record.
    const older = new DatabaseSync(path);
    older.exec('CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at INTEGER) WITHOUT ROWID');
    const expires = Date.now() + 60_000;
    older.prepare('INSERT INTO kv VALUES (?, ?, ?)').run('imagine:kv:job:kept', recordText({ state: 'running' }, expires), expires);
    older.prepare('INSERT INTO kv VALUES (?, ?, ?)').run('imagine:kv:job:gone', recordText({ state: 'running' }, Date.now() - 1), Date.now() - 1);
    older.close();
    const store = await openStore(`sqlite://${path}`, { log });
    try {
      expect(await store.kv.get('job:kept')).toEqual({ state: 'running' });
      expect(await store.kv.get('job:gone')).toBeUndefined();
      await store.kv.set('job:new', { state: 'queued' });
      expect(await store.kv.get('job:new')).toEqual({ state: 'queued' });
    } finally {
      await store.close();
    }
    const after = new DatabaseSync(path);
    expect(String((after.prepare("SELECT sql FROM sqlite_master WHERE name = 'kv'").get() as { sql: string }).sql)).not.toMatch(/WITHOUT ROWID/i);
    expect(convertKvTable(after)).toBe(false); // nothing left to convert
    after.close();
  });

  it('creates the default ./data/imagine.sqlite relative to the working directory', async () => {
    const cwd = process.cwd();
    const workDir = mkdtempSync(join(tempDir, 'cwd-'));
    process.chdir(workDir);
    try {
      const store = await openStore('sqlite://data/imagine.sqlite', { log });
      await store.kv.set('k', 'v');
      await store.close();
      expect(existsSync(join(workDir, 'data', 'imagine.sqlite'))).toBe(true);
    } finally {
      process.chdir(cwd);
    }
  });

  it('creates missing parent directories of an absolute path', async () => {
    const path = join(tempDir, 'deep', 'er', 'store.sqlite');
    const store = await openStore(`sqlite://${path}`, { log });
    await store.close();
    expect(existsSync(path)).toBe(true);
  });

  it('maps store URLs to paths', () => {
    expect(sqlitePathFromUrl('sqlite://data/imagine.sqlite', '/srv/bot')).toBe('/srv/bot/data/imagine.sqlite');
    expect(sqlitePathFromUrl('sqlite:///var/lib/imagine/db.sqlite', '/srv/bot')).toBe('/var/lib/imagine/db.sqlite');
    expect(sqlitePathFromUrl('sqlite://:memory:')).toBe(':memory:');
  });

  it('works in memory', async () => {
    const store = await openStore('sqlite://:memory:', { log });
    expect(await store.addIfWithin('c', 2, 2, Date.now() + 60_000)).toBe(2);
    await store.close();
  });
});

describe('openStore', () => {
  it('refuses an unknown scheme', async () => {
    await expect(openStore('postgres://db/imagine', { log })).rejects.toThrow(/sqlite:\/\/, redis:\/\/ or rediss:\/\//);
  });

  it('fails fast, naming the cause, when Redis does not answer at start', async () => {
    const started = Date.now();
    await expect(openStore('redis://127.0.0.1:1', { log })).rejects.toThrow(/cannot connect to Redis: .*ECONNREFUSED/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
