/**
 * The shared store for several processes: Keyv records through @keyv/redis, and the atomic
 * operations with Redis's own primitives (Lua scripts run atomically on the server; SET NX PX;
 * set commands). One @redis/client connection serves both. Every key lives under one prefix
 * (default `imagine:`) so deployments and test runs can share a server.
 */
import { createClient } from '@redis/client';
import KeyvRedis from '@keyv/redis';
import { Keyv } from 'keyv';
import type { Logger } from '../log.ts';
import { KV_CODEC, recordText, type CounterChange, type ExpiringMember, type Store } from './store.ts';

type RedisClient = ReturnType<typeof createClient>;

/** KEYS[1] counter; ARGV delta, limit, expiresAt (epoch ms). Returns the new value or nil. */
const ADD_IF_WITHIN_LUA = `
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local delta = tonumber(ARGV[1])
if current + delta > tonumber(ARGV[2]) then return false end
local value = redis.call('INCRBY', KEYS[1], delta)
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return value`;

/** KEYS[1] counter; ARGV delta, expiresAt (epoch ms). Returns the new value. */
const ADD_LUA = `
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return value`;

/**
 * KEYS[1] guard, KEYS[2] counter; ARGV guard ttl ms, delta, expiresAt (epoch ms), floor ('' for
 * none). Sets the guard and applies the delta together (a script runs atomically); 1 when applied.
 */
const ADD_ONCE_LUA = `
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
local value = redis.call('INCRBY', KEYS[2], ARGV[2])
if ARGV[4] ~= '' and value < tonumber(ARGV[4]) then redis.call('SET', KEYS[2], ARGV[4]) end
redis.call('PEXPIREAT', KEYS[2], ARGV[3])
return 1`;

/**
 * KEYS[1] lease; ARGV owner, ttl ms, alive prefix ('' for none). Takes a free lease or renews our
 * own; with a prefix, also one whose holder has no live `prefix..holder` key; 1 when held. (The
 * holder's key is only known inside the script; the store is one Redis server, not a cluster.)
 */
const LEASE_LUA = `
local held = {}
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder == false or holder == ARGV[1] or (ARGV[3] ~= '' and redis.call('EXISTS', ARGV[3] .. holder) == 0) then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
    held[i] = 1
  else
    held[i] = 0
  end
end
return held`;
/** Leases renewed per script call: one call holds Redis for about a millisecond at most. */
const LEASES_PER_CALL = 500;

/** KEYS[1] lease; ARGV owner. Deletes it only when we hold it. */
const RELEASE_LEASE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** KEYS[1] lease, KEYS[2] record; ARGV owner, record text, record ttl ms. Writes only while we hold the lease; 1 when written. */
const SET_WHILE_LEASED_LUA = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1`;

/**
 * KEYS[1] guard, then ARGV[1] counters (KEYS[2..]), then the set keys; ARGV[2] guard ttl ms ('' for
 * no guard), then per counter delta and expiresAt, then per set member the member and expiresAt.
 * With a guard already set, changes nothing and returns 0; otherwise applies all and returns 1.
 */
const ADD_MANY_LUA = `
local n = tonumber(ARGV[1])
if ARGV[2] ~= '' and not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[2]) then return 0 end
local a = 3
for i = 2, n + 1 do
  redis.call('INCRBY', KEYS[i], ARGV[a])
  redis.call('PEXPIREAT', KEYS[i], ARGV[a + 1])
  a = a + 2
end
for i = n + 2, #KEYS do
  redis.call('SADD', KEYS[i], ARGV[a])
  redis.call('PEXPIREAT', KEYS[i], ARGV[a + 1])
  a = a + 2
end
return 1`;

/** Connection attempts at boot before giving up (then the bot exits with the cause). */
const INITIAL_CONNECT_RETRIES = 3;
const RECONNECT_BASE_DELAY_MS = 50;
const RECONNECT_MAX_DELAY_MS = 2_000;

function assertInteger(name: string, n: number): void {
  if (!Number.isSafeInteger(n)) throw new RangeError(`${name} must be a safe integer, got ${n}`);
}

export interface RedisStoreOptions {
  log: Logger;
  /** Prefix of every key (Keyv namespace and atomic-op keys). */
  keyPrefix?: string;
}

export class RedisStore implements Store {
  readonly kv: Keyv;
  readonly #client: RedisClient;
  readonly #prefix: string;
  readonly #log: Logger;
  #closed = false;

  private constructor(client: RedisClient, opts: RedisStoreOptions) {
    this.#client = client;
    this.#prefix = opts.keyPrefix ?? 'imagine:';
    this.#log = opts.log;
    // Records are stored as `${prefix}kv:${key}`; the adapter does the prefixing, so Keyv must not.
    const namespace = this.#key('kv');
    const adapter = new KeyvRedis(client as never, { namespace, keyPrefixSeparator: ':', throwOnErrors: true });
    this.kv = new Keyv({ store: adapter, namespace, useKeyPrefix: false, throwOnErrors: true, ...KV_CODEC });
  }

  /** Connects to `url` (redis:// or rediss://) and resolves once the connection is ready. */
  static async connect(url: string, opts: RedisStoreOptions): Promise<RedisStore> {
    let everReady = false;
    const client: RedisClient = createClient({
      url,
      socket: {
        // At boot, a Redis that does not answer is a configuration problem: fail fast with the
        // cause instead of retrying forever. Once connected, ride out outages with backoff.
        reconnectStrategy: (retries: number, cause: Error) => {
          if (!everReady && retries >= INITIAL_CONNECT_RETRIES) return new Error(`cannot connect to Redis: ${cause.message}`);
          return Math.min(RECONNECT_BASE_DELAY_MS * 2 ** retries, RECONNECT_MAX_DELAY_MS);
        },
      },
    });
    client.on('ready', () => {
      everReady = true;
    });
    // Without a listener an 'error' event (e.g. a dropped connection, retried by the client) would crash.
    client.on('error', (err: unknown) => opts.log.error({ err }, 'redis connection error'));
    await client.connect();
    opts.log.debug({ keyPrefix: opts.keyPrefix ?? 'imagine:' }, 'redis store open');
    return new RedisStore(client, opts);
  }

  #key(key: string): string {
    return this.#prefix + key;
  }

  async addIfWithin(key: string, delta: number, limit: number, expiresAt: number): Promise<number | null> {
    assertInteger('delta', delta);
    assertInteger('limit', limit);
    const reply = await this.#client.eval(ADD_IF_WITHIN_LUA, {
      keys: [this.#key(key)],
      arguments: [String(delta), String(limit), String(Math.ceil(expiresAt))],
    });
    return reply === null ? null : Number(reply);
  }

  async add(key: string, delta: number, expiresAt: number): Promise<number> {
    assertInteger('delta', delta);
    const reply = await this.#client.eval(ADD_LUA, {
      keys: [this.#key(key)],
      arguments: [String(delta), String(Math.ceil(expiresAt))],
    });
    return Number(reply);
  }

  async read(key: string): Promise<number> {
    const value = await this.#client.get(this.#key(key));
    return value === null ? 0 : Number(value);
  }

  async resetCounter(key: string): Promise<void> {
    await this.#client.del(this.#key(key));
  }

  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    const reply = await this.#client.set(this.#key(key), value, {
      condition: 'NX',
      expiration: { type: 'PX', value: Math.max(1, Math.ceil(ttlMs)) },
    });
    return reply === 'OK';
  }

  async addOnce(guardKey: string, guardTtlMs: number, counterKey: string, delta: number, expiresAt: number, floor?: number): Promise<boolean> {
    assertInteger('delta', delta);
    if (floor !== undefined) assertInteger('floor', floor);
    const reply = await this.#client.eval(ADD_ONCE_LUA, {
      keys: [this.#key(guardKey), this.#key(counterKey)],
      arguments: [String(Math.max(1, Math.ceil(guardTtlMs))), String(delta), String(Math.ceil(expiresAt)), floor === undefined ? '' : String(floor)],
    });
    return Number(reply) === 1;
  }

  async setAdd(key: string, member: string): Promise<void> {
    await this.#client.sAdd(this.#key(key), member);
  }

  async setRemove(key: string, member: string): Promise<void> {
    await this.#client.sRem(this.#key(key), member);
  }

  async setMembers(key: string): Promise<string[]> {
    const members = await this.#client.sMembers(this.#key(key));
    return members.map(String).sort();
  }

  /** One MULTI/EXEC: LREM the old copy, LPUSH, LTRIM to `max`, PEXPIRE. */
  async recentPush(key: string, member: string, max: number, ttlMs: number): Promise<void> {
    assertInteger('max', max);
    const k = this.#key(key);
    await this.#client.multi().lRem(k, 0, member).lPush(k, member).lTrim(k, 0, max - 1).pExpire(k, Math.max(1, Math.ceil(ttlMs))).exec();
  }

  async recentList(key: string): Promise<string[]> {
    return (await this.#client.lRange(this.#key(key), 0, -1)).map(String);
  }

  async lease(key: string, owner: string, ttlMs: number, alivePrefix?: string): Promise<boolean> {
    return (await this.leaseMany([key], owner, ttlMs, alivePrefix))[0]!;
  }

  async leaseMany(keys: readonly string[], owner: string, ttlMs: number, alivePrefix?: string): Promise<boolean[]> {
    const args = [owner, String(Math.max(1, Math.ceil(ttlMs))), alivePrefix === undefined ? '' : this.#key(alivePrefix)];
    const held: boolean[] = [];
    for (let i = 0; i < keys.length; i += LEASES_PER_CALL) {
      const reply = (await this.#client.eval(LEASE_LUA, { keys: keys.slice(i, i + LEASES_PER_CALL).map((k) => this.#key(k)), arguments: args })) as unknown[];
      for (const r of reply) held.push(Number(r) === 1);
    }
    return held;
  }

  async leaseHolder(key: string): Promise<string | undefined> {
    return (await this.#client.get(this.#key(key))) ?? undefined;
  }

  async releaseLease(key: string, owner: string): Promise<void> {
    await this.#client.eval(RELEASE_LEASE_LUA, { keys: [this.#key(key)], arguments: [owner] });
  }

  async setWhileLeased(key: string, value: unknown, ttlMs: number, leaseKey: string, owner: string): Promise<boolean> {
    assertInteger('ttlMs', ttlMs);
    const reply = await this.#client.eval(SET_WHILE_LEASED_LUA, {
      // The record's key as the Keyv adapter names it (see the constructor).
      keys: [this.#key(leaseKey), `${this.#key('kv')}:${key}`],
      arguments: [owner, recordText(value, Date.now() + ttlMs), String(ttlMs)],
    });
    return reply === 1;
  }

  /**
   * PING, bounded by `timeoutMs`: while the connection is down the client queues commands until it
   * reconnects, so a PING would wait rather than fail.
   */
  async ping(timeoutMs: number): Promise<void> {
    if (!this.#client.isReady) throw new Error('redis is not connected');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`redis did not answer PING within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([this.#client.ping(), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#client.isOpen) await this.#client.close();
    this.#log.debug('redis store closed');
  }

  /** One script (atomic on the server, one round trip): the guard, INCRBY + PEXPIREAT per counter, SADD + PEXPIREAT per member. */
  async addMany(counters: readonly CounterChange[], members: readonly ExpiringMember[] = [], guard?: { key: string; ttlMs: number }): Promise<boolean> {
    for (const c of counters) assertInteger('delta', c.delta);
    if (counters.length === 0 && members.length === 0 && !guard) return true;
    const reply = await this.#client.eval(ADD_MANY_LUA, {
      keys: [this.#key(guard?.key ?? 'add-many:no-guard'), ...counters.map((c) => this.#key(c.key)), ...members.map((m) => this.#key(m.key))],
      arguments: [
        String(counters.length),
        guard ? String(Math.max(1, Math.ceil(guard.ttlMs))) : '',
        ...counters.flatMap((c) => [String(c.delta), String(Math.ceil(c.expiresAt))]),
        ...members.flatMap((m) => [m.member, String(Math.ceil(m.expiresAt))]),
      ],
    });
    return Number(reply) === 1;
  }

  /** MGET. */
  async readMany(keys: readonly string[]): Promise<number[]> {
    if (keys.length === 0) return [];
    const values = await this.#client.mGet(keys.map((k) => this.#key(k)));
    return values.map((v) => (v === null ? 0 : Number(v)));
  }

  async expiringMembers(key: string): Promise<string[]> {
    return this.setMembers(key);
  }
}
