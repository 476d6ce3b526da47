/**
 * A user's /settings are read before a platform's answer (Discord and Slack give 3 s): with a
 * budget, a store that does not answer (an outage queues commands) or fails yields
 * UNREAD_PREFERENCES (the defaults, privately) in time instead of holding the answer; a store
 * that answers gives the saved preferences. On SQLite
 * they are read at once as well (preferencesNow, and preferences() first tries it), without giving
 * up the event loop's turn.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../../src/log.ts';
import { openStore } from '../../../../src/engine/open-store.ts';
import { Quotas } from '../../../../src/engine/quota.ts';
import { MODEL_CATALOG } from '../../../../src/engine/models.ts';
import { AuditLog } from '../../../../src/engine/governance/audit.ts';
import { Governance } from '../../../../src/engine/governance/governance.ts';
import { PREFERENCES_READ_BUDGET_MS, UNREAD_PREFERENCES } from '../../../../src/engine/governance/api.ts';
import type { Requester } from '../../../../src/engine/request.ts';
import { REDIS_URL } from '../../../support/index.ts';

const log = createLogger({ level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'prefs-budget-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const user: Requester = { platform: 'discord', userId: 'u1', scope: 'g1' };

describe('preferences read before the answer', () => {
  it('gives the saved preferences, or the defaults within the budget when the store hangs', async () => {
    const store = await openStore(`sqlite://${join(dir, 'prefs.sqlite')}`, { log });
    try {
      const quotas = new Quotas(store, { dailyUnits: 10, costs: { '1K': 1, '2K': 2, '4K': 4 }, exemptUsers: [] });
      const ceilings = { defaultDailyUnits: 10, maxDailyUnits: 10, allowUnlimited: false };
      const governance = new Governance({ store, quotas, ceilings, models: MODEL_CATALOG, defaultModel: MODEL_CATALOG[0]!, audit: new AuditLog(store) });
      await governance.setPreferences(user, { ratio: '16:9', count: 2 });
      expect(await governance.preferences(user, PREFERENCES_READ_BUDGET_MS)).toEqual({ ratio: '16:9', count: 2 });
      // On SQLite they are also read at once (Discord's defer needs `private` in its own turn).
      expect(governance.preferencesNow(user)).toEqual({ ratio: '16:9', count: 2 });
      expect(governance.preferencesNow({ ...user, userId: 'u2' })).toEqual({});
      // preferences() reads them at once too: an asynchronous read that would never answer is not waited for.
      const asyncGet = store.kv.get;
      store.kv.get = (() => new Promise(() => undefined)) as typeof store.kv.get;
      expect(await governance.preferences(user, PREFERENCES_READ_BUDGET_MS)).toEqual({ ratio: '16:9', count: 2 });
      store.kv.get = asyncGet;

      // The store stops answering (Redis down: its client queues the command until it reconnects).
      store.kv.get = (() => new Promise(() => undefined)) as typeof store.kv.get;
      store.getNow = () => {
        throw new Error('database is locked');
      };
      expect(governance.preferencesNow(user)).toBeUndefined();
      const started = performance.now();
      // Unknown is answered privately: a user who chose "private by default" is not posted in public.
      expect(await governance.preferences(user, PREFERENCES_READ_BUDGET_MS)).toEqual({ private: true });
      expect(performance.now() - started).toBeLessThan(3000);

      // A read that fails (not one that finds nothing) is unknown as well.
      store.kv.get = (() => Promise.reject(new Error('database is locked'))) as typeof store.kv.get;
      expect(await governance.preferences(user, PREFERENCES_READ_BUDGET_MS)).toBe(UNREAD_PREFERENCES);
      // Without a budget the failure is the caller's to report (/settings shows an error, not defaults).
      await expect(governance.preferences(user)).rejects.toThrow('database is locked');
    } finally {
      await store.close();
    }
  });

  it('are not read at once on Redis (the store cannot): the caller reads them as before', async () => {
    const store = await openStore(REDIS_URL, { log, keyPrefix: `prefs-now-${randomUUID()}:` });
    try {
      const quotas = new Quotas(store, { dailyUnits: 10, costs: { '1K': 1, '2K': 2, '4K': 4 }, exemptUsers: [] });
      const ceilings = { defaultDailyUnits: 10, maxDailyUnits: 10, allowUnlimited: false };
      const governance = new Governance({ store, quotas, ceilings, models: MODEL_CATALOG, defaultModel: MODEL_CATALOG[0]!, audit: new AuditLog(store) });
      await governance.setPreferences(user, { private: true });
      expect(governance.preferencesNow(user)).toBeUndefined();
      expect(await governance.preferences(user)).toEqual({ private: true });
      await governance.setPreferences(user, {});
    } finally {
      await store.close();
    }
  });
});
