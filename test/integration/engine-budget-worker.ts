/**
 * One process of the cross-process budget test (budget-shared.test.ts): opens the store, says
 * "ready", waits for "go <until>" on stdin so that every process starts at once, spends the key
 * through a shared RateBudget until then, and prints one JSON line (HammerResult).
 *
 * Usage: node engine-budget-worker.ts <storeUrl> <keyPrefix> <baseUrl> <apiKey> <runId> <requests> <windowMs> <concurrency>
 */
import { createInterface } from 'node:readline';
import { createLogger } from '../../src/log.ts';
import { openStore } from '../../src/engine/open-store.ts';
import { hammerKey } from './engine-budget-hammer.ts';

const [storeUrl, keyPrefix, baseUrl, apiKey, runId, requests, windowMs, concurrency] = process.argv.slice(2);
if (!storeUrl || !keyPrefix || !baseUrl || !apiKey || !runId || !requests || !windowMs || !concurrency) {
  process.stderr.write('usage: engine-budget-worker.ts <storeUrl> <keyPrefix> <baseUrl> <apiKey> <runId> <requests> <windowMs> <concurrency>\n');
  process.exit(2);
}

const store = await openStore(storeUrl, { log: createLogger({ level: 'silent' }), keyPrefix });
const lines = createInterface({ input: process.stdin });
process.stdout.write('ready\n');
let until = 0;
for await (const line of lines) {
  const go = /^go (\d+)$/.exec(line.trim());
  if (go) {
    until = Number(go[1]);
    break;
  }
}
lines.close();

const result = await hammerKey({
  store,
  baseUrl,
  apiKey,
  runId,
  rateLimit: { requests: Number(requests), windowMs: Number(windowMs) },
  until,
  concurrency: Number(concurrency),
});
process.stdout.write(`${JSON.stringify(result)}\n`);
await store.close();
