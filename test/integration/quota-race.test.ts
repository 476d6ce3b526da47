/**
 * The acceptance criterion of the quota (issue 2, item 10): 100 simultaneous one-image (1K = 1
 * unit) requests from one user with 5 units left → exactly 5 accepted, and the counter ends at
 * the limit. On SQLite in one process, on SQLite shared by two processes, and on Redis across
 * four processes (quota-race-worker.ts). And the same with a server's role tier and a grant
 * deciding the limit (issue 10: it stays exact with tiers and grants in play).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.ts';
import { openStore } from '../../src/engine/open-store.ts';
import { Quotas } from '../../src/engine/quota.ts';
import { QuotaExceededError } from '../../src/engine/errors.ts';
import type { Requester } from '../../src/engine/request.ts';
import { deleteRedisKeys, REDIS_URL, spawnLineWorker } from '../support/index.ts';
import { AuditLog } from '../../src/engine/governance/audit.ts';
import { Governance } from '../../src/engine/governance/governance.ts';
import { MODEL_CATALOG } from '../../src/engine/models.ts';
import { GOVERNED_LIMIT, GOVERNED_RACER, GOVERNED_SCOPE, GRANT_UNITS, LOW_TIER, RACE_CEILINGS, SERVER_UNITS, TIER_UNITS } from './quota-race-governed.ts';

const log = createLogger({ level: 'silent' });
const RUN_PREFIX = `test-quota-race-${randomUUID()}:`;
const DAILY_UNITS = 20;
const UNITS_LEFT = 5;
const REQUESTS = 100;
const racer: Requester = { platform: 'discord', userId: 'racer' };
const tempDir = mkdtempSync(join(tmpdir(), 'imagine-race-'));

const WORKER = fileURLToPath(new URL('./quota-race-worker.ts', import.meta.url));

afterAll(async () => {
  rmSync(tempDir, { recursive: true, force: true });
  await deleteRedisKeys(RUN_PREFIX);
});

const newQuotas = async (storeUrl: string, keyPrefix: string) => {
  const store = await openStore(storeUrl, { log, keyPrefix });
  const quotas = new Quotas(store, { dailyUnits: DAILY_UNITS, costs: { '1K': 1, '2K': 2, '4K': 4 }, exemptUsers: [] });
  return { store, quotas };
};

interface WorkerResult {
  accepted: number;
  refused: number;
  otherErrors: string[];
}

/** Starts `processes` workers, releases them together, and returns what each saw. */
async function raceAcrossProcesses(storeUrl: string, keyPrefix: string, processes: number, perProcess: number, mode = '') {
  const args = [storeUrl, keyPrefix, String(DAILY_UNITS), String(perProcess), ...(mode ? [mode] : [])];
  const workers = Array.from({ length: processes }, () => spawnLineWorker(WORKER, args));
  try {
    for (const w of workers) expect(await w.nextLine()).toBe('ready');
    for (const w of workers) w.child.stdin.write('go\n');
    const results = await Promise.all(workers.map(async (w) => JSON.parse(await w.nextLine()) as WorkerResult));
    for (const w of workers) expect(await w.exited, w.stderr()).toBe(0);
    return results;
  } finally {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill();
  }
}

describe('100 simultaneous one-image requests with 5 units left', () => {
  it('accepts exactly 5 on SQLite in one process, and a refund restores exactly', async () => {
    const { store, quotas } = await newQuotas(`sqlite://${join(tempDir, 'one-process.sqlite')}`, RUN_PREFIX);
    try {
      await quotas.reserve(racer, DAILY_UNITS - UNITS_LEFT);
      const outcomes = await Promise.allSettled(
        Array.from({ length: REQUESTS }, () => quotas.reserve(racer, quotas.unitsFor('1K', 1))),
      );
      const accepted = outcomes.filter((o) => o.status === 'fulfilled');
      const refused = outcomes.filter((o) => o.status === 'rejected' && o.reason instanceof QuotaExceededError);
      expect(accepted).toHaveLength(UNITS_LEFT);
      expect(refused).toHaveLength(REQUESTS - UNITS_LEFT);
      expect(await quotas.view(racer)).toMatchObject({ used: DAILY_UNITS, left: 0 });

      // One accepted job fails: its unit comes back, exactly one more request fits.
      const { day } = (accepted[0] as PromiseFulfilledResult<{ day: string }>).value;
      await quotas.refund(racer, day, 1);
      expect(await quotas.view(racer)).toMatchObject({ used: DAILY_UNITS - 1, left: 1 });
      const again = await Promise.allSettled(Array.from({ length: 10 }, () => quotas.reserve(racer, 1)));
      expect(again.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
      expect((await quotas.view(racer)).used).toBe(DAILY_UNITS);
    } finally {
      await store.close();
    }
  });

  it('accepts exactly 5 on Redis across 4 processes, and a refund restores exactly', async () => {
    const keyPrefix = `${RUN_PREFIX}redis:`;
    const { store, quotas } = await newQuotas(REDIS_URL, keyPrefix);
    try {
      const { day } = await quotas.reserve(racer, DAILY_UNITS - UNITS_LEFT);
      const results = await raceAcrossProcesses(REDIS_URL, keyPrefix, 4, REQUESTS / 4);
      expect(results.flatMap((r) => r.otherErrors)).toEqual([]);
      expect(results.reduce((n, r) => n + r.accepted, 0)).toBe(UNITS_LEFT);
      expect(results.reduce((n, r) => n + r.refused, 0)).toBe(REQUESTS - UNITS_LEFT);
      expect(await quotas.view(racer)).toMatchObject({ used: DAILY_UNITS, left: 0 });

      await quotas.refund(racer, day, 1);
      expect(await quotas.view(racer)).toMatchObject({ used: DAILY_UNITS - 1, left: 1 });
      const again = await raceAcrossProcesses(REDIS_URL, keyPrefix, 2, 10);
      expect(again.reduce((n, r) => n + r.accepted, 0)).toBe(1);
      expect((await quotas.view(racer)).used).toBe(DAILY_UNITS);
    } finally {
      await store.close();
    }
  });

  it('accepts exactly 5 on one SQLite file shared by 2 processes', async () => {
    const url = `sqlite://${join(tempDir, 'shared.sqlite')}`;
    const { store, quotas } = await newQuotas(url, RUN_PREFIX);
    try {
      await quotas.reserve(racer, DAILY_UNITS - UNITS_LEFT);
      const results = await raceAcrossProcesses(url, RUN_PREFIX, 2, REQUESTS / 2);
      expect(results.flatMap((r) => r.otherErrors)).toEqual([]);
      expect(results.reduce((n, r) => n + r.accepted, 0)).toBe(UNITS_LEFT);
      expect(results.reduce((n, r) => n + r.refused, 0)).toBe(REQUESTS - UNITS_LEFT);
      expect(await quotas.view(racer)).toMatchObject({ used: DAILY_UNITS, left: 0 });
    } finally {
      await store.close();
    }
  });
});

describe('the same race with a role tier and a grant in play', () => {
  /** A server whose settings give the racer TIER_UNITS (highest of two tiers) plus GRANT_UNITS today. */
  async function governedServer(storeUrl: string, keyPrefix: string) {
    const { store, quotas } = await newQuotas(storeUrl, keyPrefix);
    const governance = new Governance({ store, quotas, ceilings: RACE_CEILINGS, models: MODEL_CATALOG, defaultModel: MODEL_CATALOG[0]!, audit: new AuditLog(store) });
    const admin: Requester = { platform: 'discord', userId: 'admin', scope: 'g1' };
    await governance.apply(GOVERNED_SCOPE, admin, { kind: 'daily-units', units: SERVER_UNITS });
    await governance.apply(GOVERNED_SCOPE, admin, { kind: 'role-tier', roleId: 'r-low', allowance: LOW_TIER });
    await governance.apply(GOVERNED_SCOPE, admin, { kind: 'role-tier', roleId: 'r-tier', allowance: TIER_UNITS });
    await governance.apply(GOVERNED_SCOPE, admin, { kind: 'grant', userId: 'racer', units: GRANT_UNITS });
    expect(await governance.allowance(GOVERNED_RACER)).toEqual({ allowance: GOVERNED_LIMIT, granted: GRANT_UNITS, blocked: false });
    // Used all but UNITS_LEFT of the governed limit (more than the flat rule's 20 allows).
    await quotas.reserve(GOVERNED_RACER, GOVERNED_LIMIT - UNITS_LEFT, GOVERNED_LIMIT);
    return { store, quotas, governance };
  }

  it('accepts exactly 5 on Redis across 4 processes', async () => {
    const keyPrefix = `${RUN_PREFIX}governed-redis:`;
    const { store, quotas } = await governedServer(REDIS_URL, keyPrefix);
    try {
      const results = await raceAcrossProcesses(REDIS_URL, keyPrefix, 4, REQUESTS / 4, 'governed');
      expect(results.flatMap((r) => r.otherErrors)).toEqual([]);
      expect(results.reduce((n, r) => n + r.accepted, 0)).toBe(UNITS_LEFT);
      expect(results.reduce((n, r) => n + r.refused, 0)).toBe(REQUESTS - UNITS_LEFT);
      expect(await quotas.view(GOVERNED_RACER, GOVERNED_LIMIT)).toMatchObject({ used: GOVERNED_LIMIT, left: 0 });
    } finally {
      await store.close();
    }
  });

  it('accepts exactly 5 on one SQLite file shared by 2 processes', async () => {
    const url = `sqlite://${join(tempDir, 'governed.sqlite')}`;
    const { store, quotas } = await governedServer(url, RUN_PREFIX);
    try {
      const results = await raceAcrossProcesses(url, RUN_PREFIX, 2, REQUESTS / 2, 'governed');
      expect(results.flatMap((r) => r.otherErrors)).toEqual([]);
      expect(results.reduce((n, r) => n + r.accepted, 0)).toBe(UNITS_LEFT);
      expect(await quotas.view(GOVERNED_RACER, GOVERNED_LIMIT)).toMatchObject({ used: GOVERNED_LIMIT, left: 0 });
    } finally {
      await store.close();
    }
  });
});
