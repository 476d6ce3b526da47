/**
 * One process of the cross-process quota race (quota-race.test.ts). Opens the store, says
 * "ready", waits for "go" on stdin so that every process fires at once, then fires `count`
 * one-unit reservations concurrently and prints one JSON line with what it saw.
 *
 * Usage: node quota-race-worker.ts <storeUrl> <keyPrefix> <dailyUnits> <count> [governed]
 *
 * With "governed", the racer is a member of server g1 and each reservation goes the engine's way:
 * the server's policy (role tier + today's grant, read from the store) gives the limit, then one
 * atomic reservation against it.
 */
import { createInterface } from 'node:readline';
import { createLogger } from '../../src/log.ts';
import { openStore } from '../../src/engine/open-store.ts';
import { Quotas } from '../../src/engine/quota.ts';
import { QuotaExceededError } from '../../src/engine/errors.ts';
import { AuditLog } from '../../src/engine/governance/audit.ts';
import { Governance } from '../../src/engine/governance/governance.ts';
import { MODEL_CATALOG } from '../../src/engine/models.ts';
import { parseRequest } from '../../src/engine/validate.ts';
import { GOVERNED_RACER, RACE_CEILINGS } from './quota-race-governed.ts';

const [storeUrl, keyPrefix, dailyUnits, count, mode] = process.argv.slice(2);
if (!storeUrl || !keyPrefix || !dailyUnits || !count) {
  process.stderr.write('usage: quota-race-worker.ts <storeUrl> <keyPrefix> <dailyUnits> <count>\n');
  process.exit(2);
}

const store = await openStore(storeUrl, { log: createLogger({ level: 'silent' }), keyPrefix });
const quotas = new Quotas(store, {
  dailyUnits: Number(dailyUnits),
  costs: { '1K': 1, '2K': 2, '4K': 4 },
  exemptUsers: [],
});
const racer = { platform: 'discord', userId: 'racer' } as const;
const governed = mode === 'governed';
const governance = new Governance({
  store,
  quotas,
  ceilings: RACE_CEILINGS,
  models: MODEL_CATALOG,
  defaultModel: MODEL_CATALOG[0]!,
  audit: new AuditLog(store),
});
const request = parseRequest({ prompt: 'race', model: 'runblob-standard', ratio: '1:1', resolution: '1K', count: 1, requester: GOVERNED_RACER }, 'runblob-standard');
async function reserveOne() {
  if (!governed) return quotas.reserve(racer, quotas.unitsFor('1K', 1));
  const { limit } = await governance.decide(request);
  return quotas.reserve(GOVERNED_RACER, quotas.unitsFor('1K', 1), limit);
}

const lines = createInterface({ input: process.stdin });
process.stdout.write('ready\n');
for await (const line of lines) if (line.trim() === 'go') break;
lines.close();

const outcomes = await Promise.allSettled(
  Array.from({ length: Number(count) }, () => reserveOne()),
);
const accepted = outcomes.filter((o) => o.status === 'fulfilled').length;
const refused = outcomes.filter((o) => o.status === 'rejected' && o.reason instanceof QuotaExceededError).length;
const otherErrors = outcomes
  .filter((o): o is PromiseRejectedResult => o.status === 'rejected' && !(o.reason instanceof QuotaExceededError))
  .map((o) => String(o.reason));
process.stdout.write(`${JSON.stringify({ accepted, refused, otherErrors })}\n`);
await store.close();
