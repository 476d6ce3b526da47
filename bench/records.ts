/**
 * `npm run bench -- records` (issue 13): what writing and reading job records costs in the SQLite
 * store, with the records table as it is now (a rowid table) and as versions before created it
 * (WITHOUT ROWID), side by side in one run. Both through the store's own Keyv adapter
 * (SqliteKeyvAdapter) on a file in WAL mode like the bot's, each file already holding
 * OLDER_RECORDS records (the weeks of jobs a bot keeps for its buttons); a round writes
 * WRITES_PER_JOB versions of JOBS job records (a job's record is rewritten at each state change)
 * and reads each back. CPU is this process's (process.cpuUsage); rounds alternate between the
 * two layouts so machine drift hits both.
 *
 *   node bench/records.ts [--jobs=N]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { fileURLToPath } from 'node:url';
import { JOB_TTL_MS, jobKey } from '../src/engine/jobs/records.ts';
import { KV_TABLE_SQL, SqliteKeyvAdapter } from '../src/engine/store-sqlite.ts';
import { recordText } from '../src/engine/store.ts';
import { alternateRounds, median, numberFlag, roundsRow } from './processes.ts';

export const RECORDS_BENCH_JOBS = 1_000;
const OLDER_RECORDS = 20_000;
const WRITES_PER_JOB = 8;
const ROUNDS = 6;

/** A job record of the usual size: two tasks, a Discord location, a quota block. */
function jobRecord(id: string, version: number): unknown {
  const now = Date.now();
  return {
    id,
    request: {
      prompt: 'a lighthouse on a cliff at dusk, waves crashing below, painted in thick oil strokes, warm light from the lamp',
      model: 'runblob-pro',
      ratio: '16:9',
      resolution: '2K',
      count: 2,
      references: [],
      requester: { platform: 'discord', userId: '123456789012345678', guildId: '234567890123456789', roles: ['345678901234567890'] },
      location: { channelId: '456789012345678901', applicationId: '567890123456789012', interactionToken: 'x'.repeat(180), messageId: '678901234567890123' },
    },
    state: version < WRITES_PER_JOB - 1 ? 'running' : 'succeeded',
    createdAt: now,
    updatedAt: now + version,
    deadlineAt: now + 600_000,
    tasks: [0, 1].map((index) => ({
      index,
      status: version > 4 ? 'succeeded' : 'running',
      submittedAt: now,
      taskId: `task-${id}-${index}-0123456789abcdef`,
      ...(version > 4 ? { image: { path: `/data/images/${id}/${index}.png`, mime: 'image/png', width: 2048, height: 1152, bytes: 3_456_789 } } : {}),
    })),
    quota: { userKey: 'discord:123456789012345678', day: '2026-12-06', reserved: 4, refunded: 0, settled: version === WRITES_PER_JOB - 1, spendReservedUsd: 0.26 },
  };
}

interface Layout {
  name: string;
  db: DatabaseSync;
  adapter: SqliteKeyvAdapter;
}

function openLayout(dir: string, name: string, createSql: string | undefined): Layout {
  const db = new DatabaseSync(join(dir, `${name}.sqlite`));
  db.exec('PRAGMA journal_mode = WAL');
  db.exec('PRAGMA synchronous = NORMAL');
  if (createSql) db.exec(createSql);
  const adapter = new SqliteKeyvAdapter(db); // creates the table when absent (the current layout)
  return { name, db, adapter };
}

async function fill(l: Layout): Promise<void> {
  for (let i = 0; i < OLDER_RECORDS; i++) await l.adapter.set(`imagine:kv:${jobKey(`older${i}`)}`, recordText(jobRecord(`older${i}`, 7), Date.now() + JOB_TTL_MS), JOB_TTL_MS);
}

async function round(l: Layout, jobs: number, prefix: string): Promise<number> {
  const cpu0 = process.cpuUsage();
  for (let v = 0; v < WRITES_PER_JOB; v++) {
    for (let i = 0; i < jobs; i++) {
      const key = `imagine:kv:${jobKey(`${prefix}${i}`)}`;
      await l.adapter.set(key, recordText(jobRecord(`${prefix}${i}`, v), Date.now() + JOB_TTL_MS), JOB_TTL_MS);
      await l.adapter.get(key);
    }
  }
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / 1000;
}

export async function runRecordsBench(jobs = RECORDS_BENCH_JOBS): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'records-bench-'));
  try {
    const now = openLayout(dir, 'rowid', undefined);
    const before = openLayout(dir, 'without-rowid', `${KV_TABLE_SQL} WITHOUT ROWID`);
    await fill(now);
    await fill(before);
    const cost = await alternateRounds({ before: (r) => round(before, jobs, `r${r}-`), now: (r) => round(now, jobs, `r${r}-`) }, ROUNDS);
    now.db.close();
    before.db.close();
    const ratio = median(cost.now) / median(cost.before);
    return [
      `### Job records in the SQLite store (${jobs} jobs × ${WRITES_PER_JOB} writes, each read back; ${OLDER_RECORDS.toLocaleString('en')} older records in the table)`,
      '',
      '| records table | CPU per job (median of rounds) | rounds |',
      '|---|---:|---|',
      roundsRow('WITHOUT ROWID (before)', cost.before, jobs),
      roundsRow('rowid (now)', cost.now, jobs),
      '',
      `Ratio now / before: **${ratio.toFixed(2)}×**. A record is ${recordText(jobRecord('example', 7), Date.now()).length} bytes of JSON here.`,
    ].join('\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.stdout.write(`${await runRecordsBench(numberFlag('jobs'))}\n`);
}
