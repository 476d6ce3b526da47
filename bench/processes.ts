/**
 * What the benches that run in several processes share: a bench file forks itself once per role
 * (`--role=NAME`, the parent's info in an environment variable), asks its children questions over
 * IPC, stops them, and reads percentiles off the latencies they report; and the small pieces
 * several benches' children use (a free port, /proc readings, a private redis-server, the real Discord bot as a child).
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../src/config.ts';
import { createLogger, type Logger } from '../src/log.ts';
import type { DriverFake } from '../test/fakes/slack/driver.ts';

/**
 * The NODE_OPTIONS the bot ships with: the Dockerfile's `ENV NODE_OPTIONS=…`, which `npm start`
 * passes as flags too (test/unit/ops/compose.test.ts keeps the two in agreement). The benches run
 * every bot process with them, so they measure the bot as users run it; bare clients and fakes run
 * with Node's defaults.
 */
export async function shippedNodeOptions(): Promise<string> {
  const dockerfile = await readFile(new URL('../Dockerfile', import.meta.url), 'utf8');
  const env = /^ENV NODE_OPTIONS="([^"]*)"/m.exec(dockerfile);
  if (!env) throw new Error('the Dockerfile sets no NODE_OPTIONS');
  return env[1]!;
}

/** Forks `script --role=<role>` and resolves with the child's first `{ ready }` message. */
export function forkRole<Ready>(script: string, role: string, env: Record<string, string> = {}): Promise<{ child: ChildProcess; ready: Ready }> {
  const child = fork(script, [`--role=${role}`], {
    execPath: process.execPath,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`bench ${role} process exited with ${code}`)));
    child.on('message', (m: { ready?: Ready }) => {
      if (m.ready !== undefined) resolve({ child, ready: m.ready });
    });
  });
}

/** Asks a child to close (`{ close: true }`); kills it if it has not exited within 10 s. */
export function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.removeAllListeners('exit');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.send({ close: true });
  });
}

/**
 * Sends `message` and resolves with the child's first answer carrying `answerKey` (the bench's
 * own IPC protocol: the caller names the answer's type).
 */
export function ask<T>(child: ChildProcess, message: object, answerKey: string): Promise<T> {
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      reject(new Error(`the child process had exited (${child.signalCode ?? `code ${child.exitCode}`}) before being asked for ${answerKey}`));
      return;
    }
    const done = () => {
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    const onMessage = (m: unknown) => {
      if (typeof m !== 'object' || m === null || !(answerKey in m)) return;
      done();
      resolve(m as T);
    };
    // A child that died (its own error is on stderr) never answers: fail the bench, do not hang it.
    const onExit = (code: number | null, signal: string | null) => {
      done();
      reject(new Error(`the child process exited (${signal ?? `code ${code}`}) before answering ${answerKey}`));
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
    child.send(message);
  });
}

/** The p-th percentile (nearest rank) of ascending `sorted`; NaN when empty. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

/** The number a bench was given as `--name=N` on its command line, if any (`--jobs=60`: a quicker run). */
export function numberFlag(name: string): number | undefined {
  const given = process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  return given === undefined ? undefined : Number(given);
}

/** The median of `xs` (the upper middle of an even count). */
export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Runs every way once per round for `rounds` rounds, the order reversed every other round so
 * machine drift hits each alike; each way's results, in round order.
 */
export async function alternateRounds<K extends string, T = number>(ways: Record<K, (round: number) => Promise<T>>, rounds: number): Promise<Record<K, T[]>> {
  const names = Object.keys(ways) as K[];
  const results = Object.fromEntries(names.map((n) => [n, [] as T[]])) as Record<K, T[]>;
  for (let r = 0; r < rounds; r++) for (const name of r % 2 === 0 ? names : [...names].reverse()) results[name].push(await ways[name](r));
  return results;
}

/**
 * Runs `one(0 … count-1)`, `concurrency` at once; CPU ms (user + system) meanwhile of this whole
 * process (every thread: libuv's pool, worker threads) and of its main thread alone.
 */
export async function cpuOf(count: number, concurrency: number, one: (i: number) => Promise<void>): Promise<{ all: number; main: number }> {
  const cpu0 = process.cpuUsage();
  const main0 = process.threadCpuUsage();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await one(next++);
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  const main = process.threadCpuUsage(main0);
  return { all: (cpu.user + cpu.system) / 1000, main: (main.user + main.system) / 1000 };
}

/** This process's CPU ms (every thread) while `one(0 … count-1)` runs, `concurrency` at once. */
export const cpuMsOf = async (count: number, concurrency: number, one: (i: number) => Promise<void>): Promise<number> => (await cpuOf(count, concurrency, one)).all;

/** A table row of alternating rounds: the median per unit, then every round's (`costs` in ms for `units` units). */
export function roundsRow(label: string, costs: number[], units: number): string {
  return `| ${label} | ${(median(costs) / units).toFixed(3)} ms | ${costs.map((c) => (c / units).toFixed(3)).join(', ')} |`;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A logger that writes nothing: a bench measures the bot, not its log output. */
export const silentLog = () => createLogger({ level: 'silent', pretty: false, destination: { write: () => undefined } });

/**
 * The bot's logger as src/main.ts makes it from `config` (botLogger: its LOG_LEVEL, by default
 * `info`; its secrets scrubbed), its lines formatted as in production but written nowhere: a bench
 * of the bot counts what formatting them costs, not the writes to a terminal or a pipe.
 */
export async function shippedLog(config: Config): Promise<Logger> {
  // Imported here: only the bot processes load the composition root, not every role.
  const { botLogger } = await import('../src/app.ts');
  return botLogger(config, { write: () => undefined });
}

/** A port free on 127.0.0.1 right now (the OS picks it), for a child told its own PUBLIC_URL. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** A field of /proc/<pid>/status given in kB (VmRSS, VmHWM…: proc(5)), in bytes. */
export async function procStatusBytes(pid: number, field: string): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  if (!kb) throw new Error(`no ${field} for ${pid}`);
  return Number(kb[1]) * 1024;
}

/** The Slack driver (test/fakes/slack/driver.ts) only needs trigger ids and response URLs it never follows. */
export function standInSlackFake(teamId: string): DriverFake {
  return { teamId, issueTriggerId: () => `bench.${randomBytes(8).toString('hex')}`, newResponseUrl: () => 'http://127.0.0.1:9/unused-response-url', fileObject: () => ({}), views: new Map() };
}

/** Where a bench's Discord bot connects: a fake Discord application and a fake RunBlob. */
export interface DiscordBotFakes {
  apiUrl: string;
  token: string;
  applicationId: string;
  runblobUrl: string;
  runblobKey: string;
}

/**
 * The child program of a bench's Discord bot: the real composition root (src/app.ts startBot,
 * what `npm start` runs) against the fakes, with SQLite in a temporary DATA_DIR, `exemptUserId`
 * free of quota, and PUBLIC_URL on a port of its own, so RunBlob calls back when a task ends (the
 * recommended deployment). Answers `{ ready: { pid } }`; `{ close: true }` stops it and removes
 * DATA_DIR, as does its parent going away (a failed or killed run leaves nothing behind).
 */
export async function discordBotChild(fakes: DiscordBotFakes, exemptUserId: string, dataDirPrefix: string): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), dataDirPrefix));
  const removeDataDir = () => rm(dataDir, { recursive: true, force: true });
  process.on('disconnect', () => void removeDataDir().finally(() => process.exit(1)));
  const { parseConfig } = await import('../src/config.ts');
  const { startBot } = await import('../src/app.ts');
  const port = await freePort();
  const config = parseConfig({
    DISCORD_TOKEN: fakes.token,
    DISCORD_APPLICATION_ID: fakes.applicationId,
    DISCORD_API_URL: fakes.apiUrl,
    RUNBLOB_API_KEY: fakes.runblobKey,
    RUNBLOB_API_URL: fakes.runblobUrl,
    STORE_URL: `sqlite://${join(dataDir, 'store.sqlite')}`,
    DATA_DIR: dataDir,
    FETCH_ALLOW_HOSTS: '127.0.0.1',
    QUOTA_EXEMPT_USERS: exemptUserId,
    PORT: String(port),
    PUBLIC_URL: `http://127.0.0.1:${port}`,
  });
  const bot = await startBot(config, { log: await shippedLog(config) });
  process.on('message', (m: { close?: boolean }) => {
    if (m.close) void bot.stop().then(removeDataDir).then(() => process.exit(0));
  });
  process.send!({ ready: { pid: process.pid } });
}

/** A redis-server of this bench's own on a free port, nothing persisted: no other run's keys. */
export async function startRedis(): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  // Never outlives the bench, even when it fails half-way.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    const deadline = Date.now() + 10_000;
    const probe = () => {
      const s = createServer();
      s.once('error', () => resolve()); // in use: redis is listening
      s.listen(port, '127.0.0.1', () => s.close(() => (Date.now() > deadline ? reject(new Error('redis-server did not start')) : setTimeout(probe, 50))));
    };
    probe();
  });
  const stop = () =>
    new Promise<void>((r) => {
      process.off('exit', killOnExit);
      if (child.exitCode !== null || child.signalCode !== null) return r();
      child.once('exit', () => r());
      child.kill('SIGTERM');
    });
  return { url: `redis://127.0.0.1:${port}`, stop };
}
