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
 * Then, on the rowid layout, the same writes committed one by one (as before group commit) and
 * through the store's group commit (src/engine/sqlite-group-commit.ts), WRITES_PER_TURN of them
 * issued in each turn of the event loop, as a bot with many jobs in flight issues them.
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
import { GroupCommit } from '../src/engine/sqlite-group-commit.ts';
import { recordText } from '../src/engine/store.ts';
import { alternateRounds, median, numberFlag, roundsRow } from './processes.ts';

export const RECORDS_BENCH_JOBS = 1_000;
const OLDER_RECORDS = 20_000;
const WRITES_PER_JOB = 8;
const ROUNDS = 6;
/** Record writes issued in one turn of the event loop in the group-commit rounds. */
const WRITES_PER_TURN = 10;

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

function openLayout(dir: string, name: string, createSql: string | undefined, groupCommit = false): Layout {
  const path = join(dir, `${name}.sqlite`);
  const db = new DatabaseSync(path);
  db.exec('PRAGMA journal_mode = WAL');
  db.exec('PRAGMA synchronous = NORMAL');
  if (createSql) db.exec(createSql);
  // Creates the table when absent (the current layout); without a GroupCommit each write commits alone.
  const adapter = new SqliteKeyvAdapter(db, groupCommit ? new GroupCommit(db, path) : undefined);
  return { name, db, adapter };
}

async function fill(l: Layout): Promise<void> {
  for (let i = 0; i < OLDER_RECORDS; i++) await l.adapter.set(`imagine:kv:${jobKey(`older${i}`)}`, recordText(jobRecord(`older${i}`, 7), Date.now() + JOB_TTL_MS), JOB_TTL_MS);
}

/** CPU ms of writing every job's WRITES_PER_JOB versions, `perTurn` writes at a time, each read back. */
async function round(l: Layout, jobs: number, prefix: string, perTurn = 1): Promise<number> {
  const cpu0 = process.cpuUsage();
  const write = async (i: number, v: number) => {
    const key = `imagine:kv:${jobKey(`${prefix}${i}`)}`;
    await l.adapter.set(key, recordText(jobRecord(`${prefix}${i}`, v), Date.now() + JOB_TTL_MS), JOB_TTL_MS);
    await l.adapter.get(key);
  };
  for (let v = 0; v < WRITES_PER_JOB; v++) {
    for (let i = 0; i < jobs; i += perTurn) await Promise.all(Array.from({ length: Math.min(perTurn, jobs - i) }, (_, n) => write(i + n, v)));
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
    const alone = openLayout(dir, 'commit-per-write', undefined);
    const grouped = openLayout(dir, 'group-commit', undefined, true);
    await fill(alone);
    await fill(grouped);
    const commits = await alternateRounds(
      { before: (r) => round(alone, jobs, `r${r}-`, WRITES_PER_TURN), now: (r) => round(grouped, jobs, `r${r}-`, WRITES_PER_TURN) },
      ROUNDS,
    );
    for (const l of [now, before, alone, grouped]) l.db.close();
    /** A table of `cost`'s two ways side by side, and their ratio. */
    const compared = (title: string, column: string, labels: { before: string; now: string }, c: { before: number[]; now: number[] }, after: string) => [
      `### ${title}`,
      '',
      `| ${column} | CPU per job (median of rounds) | rounds |`,
      '|---|---:|---|',
      roundsRow(labels.before, c.before, jobs),
      roundsRow(labels.now, c.now, jobs),
      '',
      `Ratio now / before: **${(median(c.now) / median(c.before)).toFixed(2)}×**. ${after}`,
    ];
    return [
      ...compared(
        `Job records in the SQLite store (${jobs} jobs × ${WRITES_PER_JOB} writes, each read back; ${OLDER_RECORDS.toLocaleString('en')} older records in the table)`,
        'records table',
        { before: 'WITHOUT ROWID (before)', now: 'rowid (now)' },
        cost,
        `A record is ${recordText(jobRecord('example', 7), Date.now()).length} bytes of JSON here.`,
      ),
      '',
      ...compared(
        `The same writes on the rowid table, ${WRITES_PER_TURN} issued in each turn of the event loop`,
        'commits',
        { before: 'one per write (before)', now: 'one per turn: group commit (now)' },
        commits,
        "In a running bot a commit costs more than here (other work evicts SQLite's pages and the kernel's from the CPU caches), so this understates the gain.",
      ),
    ].join('\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.stdout.write(`${await runRecordsBench(numberFlag('jobs'))}\n`);
}
