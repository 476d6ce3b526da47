/**
 * `npm run bench -- leases` (issue 13): what keeping N in-flight jobs leased costs the bot's main
 * thread, per renewal round (every LEASE_TTL_MS / 3 = 10 s), side by side in one run:
 *   - per job, as each run did before: one `lease()` and one cancel-request read per job
 *     (JobRecords.lease / cancelRequest), all at once;
 *   - batched, as the runner does now: one `renewLeases()` and one `cancelRequests()` for all
 *     (Store.leaseMany, Keyv getMany).
 * On a SQLite file and on a private redis-server (a free port, nothing persisted). CPU is the
 * bench process's own (process.cpuUsage: user + system), i.e. the bot's side of the calls;
 * rounds alternate between the two ways so machine drift hits both.
 *
 *   node bench/leases.ts [--jobs=N]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LEASE_TTL_MS, RECORD_WRITE_RETRY } from '../src/engine/jobs/context.ts';
import { JobRecords } from '../src/engine/jobs/records.ts';
import { openStore } from '../src/engine/open-store.ts';
import type { Store } from '../src/engine/store.ts';
import { median, numberFlag, silentLog, startRedis } from './processes.ts';

/** In-flight jobs per round (issue 13: "RSS … at 1,000 jobs"). */
export const LEASES_BENCH_JOBS = 1_000;
const ROUNDS = 12;

interface Cost {
  cpuMs: number;
  wallMs: number;
}

async function measure(round: () => Promise<void>): Promise<Cost> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await round();
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { cpuMs: (cpu.user + cpu.system) / 1000, wallMs };
}

async function compare(store: Store, jobs: number): Promise<{ perJob: Cost; batched: Cost }> {
  const records = new JobRecords({ store, processId: 'bench', leaseTtlMs: LEASE_TTL_MS, writeRetry: RECORD_WRITE_RETRY, now: Date.now });
  const ids = Array.from({ length: jobs }, (_, i) => `bench${String(i).padStart(8, '0')}`);
  await Promise.all(ids.map((id) => records.lease(id)));
  const perJob: Cost[] = [];
  const batched: Cost[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    perJob.push(await measure(async () => void (await Promise.all(ids.flatMap((id) => [records.lease(id), records.cancelRequest(id)])))));
    batched.push(await measure(async () => void (await Promise.all([records.renewLeases(ids), records.cancelRequests(ids)]))));
  }
  // The first two rounds warm up the JIT and the connection.
  const med = (cs: Cost[]): Cost => ({ cpuMs: median(cs.slice(2).map((c) => c.cpuMs)), wallMs: median(cs.slice(2).map((c) => c.wallMs)) });
  return { perJob: med(perJob), batched: med(batched) };
}

export async function runLeasesBench(opts: { jobs?: number } = {}): Promise<string> {
  const jobs = opts.jobs ?? LEASES_BENCH_JOBS;
  const dir = await mkdtemp(join(tmpdir(), 'bench-leases-'));
  const redis = await startRedis();
  const rows: string[] = [];
  try {
    for (const [name, url] of [
      ['SQLite file', `sqlite://${join(dir, 'store.sqlite')}`],
      ['Redis', redis.url],
    ] as const) {
      const store = await openStore(url, { log: silentLog(), keyPrefix: 'bench:' });
      try {
        const { perJob, batched } = await compare(store, jobs);
        const perSecond = (c: Cost) => (c.cpuMs / (LEASE_TTL_MS / 3 / 1000)).toFixed(1);
        rows.push(
          `| ${name} | ${perJob.cpuMs.toFixed(1)} ms (${perSecond(perJob)} ms/s) | ${batched.cpuMs.toFixed(1)} ms (${perSecond(batched)} ms/s) | **${(batched.cpuMs / perJob.cpuMs).toFixed(2)}×** | ${perJob.wallMs.toFixed(1)} → ${batched.wallMs.toFixed(1)} ms |`,
        );
      } finally {
        await store.close();
      }
    }
  } finally {
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  }
  return [
    `### Keeping ${jobs} in-flight jobs leased (one renewal round, every ${LEASE_TTL_MS / 3 / 1000} s)`,
    '',
    '| store | per job (before): CPU per round | batched (now): CPU per round | ratio | wall time per round |',
    '|---|---|---|---|---|',
    ...rows,
    '',
    `CPU: this process's user + system time (the bot's side of the calls), median of ${ROUNDS - 2} rounds after 2 warm-up rounds, the two ways alternating.`,
  ].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const jobs = numberFlag('jobs');
  process.stdout.write(`${await runLeasesBench(jobs !== undefined ? { jobs } : {})}\n`);
}
