/**
 * The store: Keyv for records (jobs), plus the atomic operations Keyv lacks, implemented with
 * each backend's own primitive (SQLite: single-statement upserts with RETURNING, or a few in one
 * savepoint of a group-committed transaction; Redis: Lua / INCRBY / SET NX). One interface, two
 * implementations: store-sqlite.ts and store-redis.ts.
 */
import { defaultDeserialize } from '@keyv/serialize';
import type { Keyv, KeyvOptions } from 'keyv';

/**
 * How both stores' Keyv turns records into text: plain JSON.stringify / JSON.parse, which V8 runs
 * natively, instead of Keyv's default (@keyv/serialize: a JavaScript walk of every value, and a
 * JSON.parse reviver called for every string, to carry Buffers, which no record here holds). A
 * job record is rewritten at each state change, so this was the larger part of the cost of a write
 * (`npm run bench -- jobs`). Text written this way starts with JSON_RECORD_MARK; anything else was
 * written by the default serializer (an older version of the bot) and is read with its reader.
 */
const JSON_RECORD_MARK = '{"json":1,';
/** A record's text as the stores' Keyv writes it (also Store.setWhileLeased, which writes past Keyv). */
export const recordText = (value: unknown, expires: number | undefined | null): string =>
  `${JSON_RECORD_MARK}"value":${JSON.stringify(value) ?? 'null'},"expires":${JSON.stringify(expires ?? null)}}`;
/** A record's text as the stores' Keyv reads it (also Store.getNow, which reads past Keyv). */
export const recordOfText = (text: string): { value?: unknown; expires?: number } =>
  text.startsWith(JSON_RECORD_MARK) ? (JSON.parse(text) as { value?: unknown; expires?: number }) : defaultDeserialize(text);
export const KV_CODEC: Pick<KeyvOptions, 'serialize' | 'deserialize'> = {
  serialize: ({ value, expires }) => recordText(value, expires),
  deserialize: recordOfText as NonNullable<KeyvOptions['deserialize']>,
};

/** One counter change of Store.addMany. */
export interface CounterChange {
  key: string;
  /** An integer, may be negative. */
  delta: number;
  /** Epoch ms the counter then expires at. */
  expiresAt: number;
}

/** One member added to an expiring set by Store.addMany. */
export interface ExpiringMember {
  key: string;
  member: string;
  /** Epoch ms the whole set then expires at. */
  expiresAt: number;
}

/** How long a store's ping may take before it counts as not answering (GET /readyz, STORE_UNAVAILABLE). */
export const STORE_PING_TIMEOUT_MS = 1_000;

export interface Store {
  /** Key-value records (JSON-serialisable values). Namespaced per use by the caller's key prefix. */
  readonly kv: Keyv;

  /**
   * Atomically adds `delta` to the counter `key` if the result stays ≤ `limit`; returns the new
   * value, or null (and changes nothing) when it would exceed the limit. The counter expires at
   * `expiresAt` (epoch ms); a missing counter counts as 0.
   */
  addIfWithin(key: string, delta: number, limit: number, expiresAt: number): Promise<number | null>;
  /** Atomically adds `delta` (may be negative) to the counter; returns the new value. */
  add(key: string, delta: number, expiresAt: number): Promise<number>;
  /** Reads a counter (0 when missing or expired). */
  read(key: string): Promise<number>;
  /** Atomically removes the counter `key` (it then reads 0): an admin's "reset this user's day". */
  resetCounter(key: string): Promise<void>;

  /** Sets `key` only if absent (atomic); true when this call set it. For de-duplication. */
  setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean>;

  /**
   * Exactly-once counter change: in ONE atomic step, if `guardKey` is absent, sets it (for
   * `guardTtlMs`) and adds `delta` to the counter `counterKey` (which then expires at `expiresAt`,
   * epoch ms; a missing or expired counter counts as 0). Returns true when this call applied it,
   * false (and changes nothing) when the guard already existed. A caller that dies at any point
   * and retries either finds the guard (the change is in) or not (nothing was applied): never
   * half of it. With `floor`, the counter ends at no less than `floor` (a refund that would take
   * it below 0 stops at 0). The guard lives in setIfAbsent's key space: setIfAbsent(guardKey)
   * after a successful addOnce returns false, and the other way round.
   */
  addOnce(guardKey: string, guardTtlMs: number, counterKey: string, delta: number, expiresAt: number, floor?: number): Promise<boolean>;

  /** Set membership, for the index of unfinished jobs. */
  setAdd(key: string, member: string): Promise<void>;
  setRemove(key: string, member: string): Promise<void>;
  setMembers(key: string): Promise<string[]>;

  /**
   * A bounded list of recent members, newest first (a user's last jobs, for /history). In ONE
   * atomic step: puts `member` first (an earlier copy is removed), keeps the `max` newest, and
   * makes the whole list expire `ttlMs` after this push.
   */
  recentPush(key: string, member: string, max: number, ttlMs: number): Promise<void>;
  /** The list `key`, newest first ([] when missing or expired). */
  recentList(key: string): Promise<string[]>;

  /**
   * Acquires or renews a lease held by `owner` for `ttlMs`. True when `owner` holds it after the
   * call. Lets several processes share one store: each running job is owned by one process.
   * With `alivePrefix`, a live lease is taken too when its holder has no live lease at
   * `alivePrefix + holder` (the holder's process stopped renewing its heartbeat): one atomic step.
   */
  lease(key: string, owner: string, ttlMs: number, alivePrefix?: string): Promise<boolean>;
  /** `lease` for each of `keys` (one round trip, each key its own atomic step): whether `owner` holds each after the call. */
  leaseMany(keys: readonly string[], owner: string, ttlMs: number, alivePrefix?: string): Promise<boolean[]>;
  releaseLease(key: string, owner: string): Promise<void>;
  /**
   * Writes the record `key` (as kv.set(key, value, ttlMs) would) only while `owner` holds the live
   * lease `leaseKey`, in one atomic step: false, and nothing written, otherwise. A job's run writes
   * its record this way, so a write held back past the loss of its lease (a connection's queue
   * replayed after an outage in which another process took the job) cannot land over the new
   * holder's.
   */
  setWhileLeased(key: string, value: unknown, ttlMs: number, leaseKey: string, owner: string): Promise<boolean>;
  /**
   * What `kv.get(key)` resolves to, read synchronously, where the backend reads that way (SQLite:
   * node:sqlite is synchronous); absent where it cannot (Redis: callers use kv.get). For a read that
   * must come before a platform's acknowledgement without giving up the event-loop turn.
   */
  getNow?(key: string): unknown;
  /** The owner of the live lease `key`, or undefined when nobody holds it. */
  leaseHolder(key: string): Promise<string | undefined>;

  /**
   * A cheap round trip (SQLite `SELECT 1`, Redis `PING`) for the readiness check (GET /readyz) and
   * to tell a user whose command failed on the store that it is down (STORE_UNAVAILABLE):
   * resolves when the store answered within `timeoutMs`, rejects otherwise.
   */
  ping(timeoutMs: number): Promise<void>;

  close(): Promise<void>;

  /**
   * Many counter changes (like add()) and expiring-set additions in ONE atomic step and one round
   * trip (SQLite: one savepoint; Redis: MULTI/EXEC), for ledgers that touch many counters per
   * event (governance/usage.ts: a job's usage by day, month, user and model). With `guard`, it is
   * also exactly-once like addOnce(): applied only when `guard.key` is absent (which it then sets
   * for `guard.ttlMs`, in setIfAbsent's key space), all in the same step. True when applied.
   */
  addMany(counters: readonly CounterChange[], members?: readonly ExpiringMember[], guard?: { key: string; ttlMs: number }): Promise<boolean>;
  /** Reads several counters in one round trip (0 for a missing or expired one), in order. */
  readMany(keys: readonly string[]): Promise<number[]>;
  /** The members of an expiring set addMany() wrote, sorted ([] when missing or expired). */
  expiringMembers(key: string): Promise<string[]>;
}
