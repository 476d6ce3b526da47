/**
 * `npm run bench -- log` (issue 13, "cheap logging on the hot path"): CPU of the bot's logger
 * (src/log.ts: secret fields redacted by name, configured secrets and Discord route tokens
 * scrubbed from every line) against pino with none of that, side by side in one run: per line
 * (a job's "job queued" line from a job's child logger) and per child logger (one per job). A job
 * writes about ten lines at the default level (`npm run bench -- jobs` runs the bot at it).
 * Lines go nowhere (the cost of formatting them, not of a terminal or a pipe); rounds alternate
 * so machine drift hits both alike.
 *
 *   node bench/log.ts [--lines=N]
 */
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { createLogger, type Logger } from '../src/log.ts';
import { alternateRounds, median, numberFlag } from './processes.ts';

export const LOG_BENCH_LINES = 100_000;
const ROUNDS = 6;
const here = fileURLToPath(import.meta.url);

/** What a line of a job carries, as the engine logs it when a job is queued. */
const QUEUED = { userKey: 'slack:U0123456789', count: 1, resolution: '1K', ratio: '16:9', references: 0, units: 1 };
const bindings = (i: number) => ({ jobId: `jetQMLIGWW8f${i}`, provider: 'runblob', model: 'runblob-standard' });

/** CPU µs per line and per child logger of `log`, over `lines` of each. */
function cost(log: Logger, lines: number): { line: number; child: number } {
  const job = log.child(bindings(0));
  const t0 = process.cpuUsage();
  for (let i = 0; i < lines; i++) job.info(QUEUED, 'job queued');
  const t1 = process.cpuUsage();
  for (let i = 0; i < lines; i++) log.child(bindings(i));
  const t2 = process.cpuUsage();
  const us = (a: NodeJS.CpuUsage, b: NodeJS.CpuUsage) => (b.user - a.user + b.system - a.system) / lines;
  return { line: us(t0, t1), child: us(t1, t2) };
}

export async function runLogBench(lines = LOG_BENCH_LINES): Promise<string> {
  const discard = { write: () => undefined };
  const loggers = {
    bot: createLogger({ level: 'info', pretty: false, destination: discard, secrets: ['xoxb-0000-bench-bot-token', 'rb_live_bench_api_key'] }),
    plain: pino({ level: 'info' }, discard),
  };
  for (const log of Object.values(loggers)) cost(log, lines / 10); // warm-up: JIT
  const rounds = await alternateRounds({ bot: async () => cost(loggers.bot, lines), plain: async () => cost(loggers.plain, lines) }, ROUNDS);
  const med = (way: keyof typeof rounds, k: 'line' | 'child') => median(rounds[way].map((r) => r[k]));
  const row = (label: string, way: keyof typeof rounds) =>
    `| ${label} | ${med(way, 'line').toFixed(2)} µs | ${med(way, 'child').toFixed(2)} µs | ${rounds[way].map((r) => r.line.toFixed(2)).join(', ')} |`;
  return [
    `### Logging: the bot's logger against plain pino (${lines} lines and ${lines} child loggers per round, ${ROUNDS} rounds alternating)`,
    '',
    '| logger | CPU per line (median) | per child logger (median) | per line, each round |',
    '|---|---:|---:|---|',
    row('the bot\'s (src/log.ts: secret fields by name, secrets and route tokens scrubbed)', 'bot'),
    row('pino, no redaction or scrubbing', 'plain'),
    '',
    `Ratio bot / plain: **${(med('bot', 'line') / med('plain', 'line')).toFixed(2)}×** per line, ${(med('bot', 'child') / med('plain', 'child')).toFixed(2)}× per child logger.`,
  ].join('\n');
}

if (process.argv[1] === here) process.stdout.write(`${await runLogBench(numberFlag('lines'))}\n`);
