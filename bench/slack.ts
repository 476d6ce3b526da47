/**
 * Slack acknowledgement latency (issue 4, item 9): 500 correctly signed `/imagine` slash
 * commands POSTed to /slack/events, timed from the first byte sent to the full HTTP response
 * (Bolt answers on ack()), side by side in the same run:
 * - the real bot: every command becomes a job (engine, store, provider calls, placeholder edits,
 *   uploads) that keeps running while later commands arrive;
 * - a bare Bolt app that only acks.
 * Two load shapes, each in fresh processes:
 * - sustained: 50 commands/s, interleaved round by round so both apps see the same machine noise;
 * - burst: all 500 at once, 3 bursts per app, the bare app's first (the strict order).
 * Target: the bot's p99 within 1.2× of the bare app's.
 *
 * Each side runs in its own process, and the fakes (Slack, Runbase, RunBlob) in a third, so the
 * fakes' work (rendering PNGs, parsing uploads) and the load generator are not billed to either
 * app. The same file is the child program (`--role=fakes|bot|bare`).
 *
 *   node bench/slack.ts                          # prints both tables
 *   node bench/slack.ts --sustained | --burst    # one of them
 */
import { ask, forkRole, percentile, shippedLog, shippedNodeOptions, silentLog, standInSlackFake, stopChild } from './processes.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { App, HTTPReceiver } from '@slack/bolt';
import { startHttpServer } from '../src/platforms/http/server.ts';
import { boltLogger } from '../src/platforms/slack/index.ts';
import { createSlackDriver, type SlackDriver } from '../test/fakes/slack/driver.ts';

export const SLACK_BENCH_COMMANDS = 500;
/** Arrival rate: a very busy workspace (Slack itself spreads a team's commands out). */
export const SLACK_BENCH_COMMANDS_PER_SECOND = 50;
/** Sustained phase: rounds per app, alternating bot / bare, so drift affects both alike. */
export const SLACK_BENCH_ROUNDS = 10;
/** Burst phase: bursts of SLACK_BENCH_COMMANDS at once per app. */
export const SLACK_BENCH_BURST_ROUNDS = 3;
export const SLACK_ACK_TARGET_RATIO = 1.2;
const WARMUP_COMMANDS = 30;
/** The providers' fast end ("7–30 s", docs/providers.md "Generation times"): jobs are in flight during the burst. */
const PROVIDER_DURATION_MS = 8_000;
const SIGNING_SECRET = 'bench-signing-secret-0123456789abcdef';
const BENCH_USER = 'UBENCH';



// ---- children ---------------------------------------------------------------------------------

type FakesInfo = { apiUrl: string; botToken: string; teamId: string; runbaseUrl: string; runbaseKey: string; runblobUrl: string; runblobKey: string };

async function fakesChild(): Promise<void> {
  const { startFakeSlack } = await import('../test/fakes/slack/fake-slack.ts');
  const { startFakeRunbase } = await import('../test/fakes/runbase.ts');
  const { startFakeRunblob } = await import('../test/fakes/runblob.ts');
  const slack = await startFakeSlack();
  const runbase = await startFakeRunbase({ durationMs: PROVIDER_DURATION_MS });
  const runblob = await startFakeRunblob({ durationMs: PROVIDER_DURATION_MS });
  process.on('message', (m: { count?: boolean; close?: boolean }) => {
    if (m.count) process.send!({ placeholders: slack.callsTo('chat.postMessage').filter((c) => c.response.ok).length });
    if (m.close) void Promise.all([slack.close(), runbase.close(), runblob.close()]).then(() => process.exit(0));
  });
  const info: FakesInfo = {
    apiUrl: slack.apiUrl,
    botToken: slack.botToken,
    teamId: slack.teamId,
    runbaseUrl: runbase.url,
    runbaseKey: runbase.apiKey,
    runblobUrl: runblob.url,
    runblobKey: runblob.apiKey,
  };
  process.send!({ ready: info });
}

async function botChild(info: FakesInfo): Promise<void> {
  // The real composition root with production timing: exactly what `npm start` runs.
  const { startBot } = await import('../src/app.ts');
  const { parseConfig } = await import('../src/config.ts');
  const dataDir = await mkdtemp(join(tmpdir(), 'imagine-slack-bench-'));
  const config = parseConfig({
    SLACK_BOT_TOKEN: info.botToken,
    SLACK_SIGNING_SECRET: SIGNING_SECRET,
    SLACK_API_URL: info.apiUrl,
    RUNBASE_API_KEY: info.runbaseKey,
    RUNBASE_API_URL: info.runbaseUrl,
    RUNBLOB_API_KEY: info.runblobKey,
    RUNBLOB_API_URL: info.runblobUrl,
    STORE_URL: `sqlite://${join(dataDir, 'store.sqlite')}`,
    DATA_DIR: dataDir,
    FETCH_ALLOW_HOSTS: '127.0.0.1',
    QUOTA_EXEMPT_USERS: BENCH_USER,
    PORT: '0',
  });
  const bot = await startBot(config, { log: await shippedLog(config) });
  process.on('message', (m: { close?: boolean }) => {
    if (m.close) void bot.stop().then(() => rm(dataDir, { recursive: true, force: true })).then(() => process.exit(0));
  });
  process.send!({ ready: { eventsUrl: `${bot.http.localUrl}/slack/events` } });
}

async function bareChild(info: FakesInfo): Promise<void> {
  const log = silentLog();
  const receiver = new HTTPReceiver({ signingSecret: SIGNING_SECRET, logger: boltLogger(log), processBeforeResponse: false });
  const app = new App({ token: info.botToken, receiver, logger: boltLogger(log), clientOptions: { slackApiUrl: info.apiUrl }, deferInitialization: true, convoStore: false });
  app.command(/.*/, async ({ ack }) => {
    await ack();
  });
  await app.init();
  // Mounted the same way as the bot's: on the bot's kind of HTTP server at /slack/events.
  const http = await startHttpServer(0, log, '127.0.0.1');
  http.mount('POST', '/slack/events', (req, res) => receiver.requestListener(req, res));
  process.on('message', (m: { close?: boolean }) => {
    if (m.close) void http.close().then(() => process.exit(0));
  });
  process.send!({ ready: { eventsUrl: `${http.localUrl}/slack/events` } });
}

/** A child process; the bot's with the NODE_OPTIONS it ships with. */
const spawnRole = async (role: 'fakes' | 'bot' | 'bare', info?: FakesInfo) =>
  forkRole<FakesInfo & { eventsUrl: string }>(fileURLToPath(import.meta.url), role, {
    ...(info && { SLACK_BENCH_FAKES: JSON.stringify(info) }),
    ...(role === 'bot' && { NODE_OPTIONS: await shippedNodeOptions() }),
  });

// ---- the load generator ---------------------------------------------------------------------

/**
 * Open-loop load: command i is sent at start + i / rate, whatever the answers before it (as
 * Slack would: users do not wait for each other). Returns each command's ack latency.
 */
async function load(driver: SlackDriver, count: number, perSecond: number, label: string): Promise<number[]> {
  const start = performance.now();
  const sends: Promise<number>[] = [];
  for (let i = 0; i < count; i++) {
    const due = start + (i * 1000) / perSecond;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    sends.push(
      driver.slashCommand({ user: { id: BENCH_USER }, channel: 'CBENCH', text: `${label} bench prompt ${i} --ar 16:9` }).then((r) => {
        if (r.status !== 200) throw new Error(`${label}: HTTP ${r.status} for command ${i}`);
        return r.ackMs;
      }),
    );
  }
  return Promise.all(sends);
}

interface PhaseResult {
  bot: number[];
  bare: number[];
  placeholders: number;
  expected: number;
}

/**
 * One phase in fresh processes (fakes, bot, bare app). `sustained`: both apps interleaved round
 * by round at `perSecond`. `burst`: `count` commands sent at once, `rounds` times per app, the
 * bare app's bursts first (on a quiet machine), then the bot's, each with the earlier bursts'
 * jobs still running: the strict order (the bot's background work would otherwise slow the bare
 * app down too).
 */
async function runPhase(kind: 'sustained' | 'burst', count: number, perSecond: number, rounds: number): Promise<PhaseResult> {
  const fakes = await spawnRole('fakes');
  const children = [fakes.child];
  const bot: number[] = [];
  const bare: number[] = [];
  let placeholders = 0;
  let expected = WARMUP_COMMANDS;
  try {
    const [botProc, bareProc] = await Promise.all([spawnRole('bot', fakes.ready), spawnRole('bare', fakes.ready)]);
    children.push(botProc.child, bareProc.child);
    const standIn = standInSlackFake(fakes.ready.teamId);
    const botDriver = createSlackDriver({ eventsUrl: botProc.ready.eventsUrl, signingSecret: SIGNING_SECRET, fake: standIn });
    const bareDriver = createSlackDriver({ eventsUrl: bareProc.ready.eventsUrl, signingSecret: SIGNING_SECRET, fake: standIn });
    await load(bareDriver, WARMUP_COMMANDS, SLACK_BENCH_COMMANDS_PER_SECOND, 'warm');
    await load(botDriver, WARMUP_COMMANDS, SLACK_BENCH_COMMANDS_PER_SECOND, 'warm');
    if (kind === 'sustained') {
      const perRound = Math.ceil(count / rounds);
      for (let r = 0; r < rounds; r++) {
        const n = Math.min(perRound, count - r * perRound);
        if (n <= 0) break;
        bare.push(...(await load(bareDriver, n, perSecond, 'bare')));
        bot.push(...(await load(botDriver, n, perSecond, 'bot')));
        expected += n;
      }
    } else {
      for (let r = 0; r < rounds; r++) bare.push(...(await load(bareDriver, count, Infinity, 'bare')));
      for (let r = 0; r < rounds; r++) {
        bot.push(...(await load(botDriver, count, Infinity, 'bot')));
        expected += count;
      }
    }
    // The bot really took every command on: each one got its placeholder in (fake) Slack.
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      ({ placeholders } = await ask<{ placeholders: number }>(fakes.child, { count: true }, 'placeholders'));
      if (placeholders >= expected) break;
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    for (const child of children.reverse()) await stopChild(child);
  }
  return { bot, bare, placeholders, expected };
}

export async function runSlackBench(opts: { commands?: number; perSecond?: number; rounds?: number; burstRounds?: number; only?: 'sustained' | 'burst' } = {}): Promise<string> {
  const commands = opts.commands ?? SLACK_BENCH_COMMANDS;
  const perSecond = opts.perSecond ?? SLACK_BENCH_COMMANDS_PER_SECOND;
  const rounds = opts.rounds ?? SLACK_BENCH_ROUNDS;
  const burstRounds = opts.burstRounds ?? SLACK_BENCH_BURST_ROUNDS;
  const out: string[] = [];
  const row = (name: string, xs: number[]) =>
    `| ${name} | ${xs.length} | ${percentile(xs, 50).toFixed(2)} | ${percentile(xs, 99).toFixed(2)} | ${(xs.at(-1) ?? NaN).toFixed(2)} |`;
  const table = (title: string, r: PhaseResult, note: string) => {
    const botSorted = [...r.bot].sort((a, b) => a - b);
    const bareSorted = [...r.bare].sort((a, b) => a - b);
    const ratio = percentile(botSorted, 99) / percentile(bareSorted, 99);
    out.push(
      title,
      '',
      '| app | commands | p50 ms | p99 ms | max ms |',
      '|---|---|---|---|---|',
      row('imagine bot (jobs running behind the acks)', botSorted),
      row('bare Bolt app (ack only)', bareSorted),
      '',
      `p99 ratio bot / bare: **${ratio.toFixed(2)}×** (target ≤ ${SLACK_ACK_TARGET_RATIO}×: ${ratio <= SLACK_ACK_TARGET_RATIO ? 'met' : 'NOT met'}). ` +
        `Every bot command became a job with its placeholder posted: ${r.placeholders} of ${r.expected}. ${note}`,
      '',
    );
  };
  const providerNote = `Fake providers take ${PROVIDER_DURATION_MS / 1000} s per image, so jobs are queued and polling while later commands arrive.`;
  if (opts.only !== 'burst') {
    const r = await runPhase('sustained', commands, perSecond, rounds);
    table(`### Slack: acknowledgement latency, sustained (${commands} signed /imagine commands at ${perSecond}/s, ${rounds} interleaved rounds per app)`, r, providerNote);
  }
  if (opts.only !== 'sustained') {
    const r = await runPhase('burst', commands, Infinity, burstRounds);
    table(
      `### Slack: acknowledgement latency, burst (${commands} signed /imagine commands sent at once, ${burstRounds} measured bursts per app, the bare app's first)`,
      r,
      providerNote,
    );
  }
  return out.join('\n').trimEnd();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const role = process.argv.find((a) => a.startsWith('--role='))?.slice('--role='.length);
  const info = process.env.SLACK_BENCH_FAKES ? (JSON.parse(process.env.SLACK_BENCH_FAKES) as FakesInfo) : undefined;
  if (role === 'fakes') await fakesChild();
  else if (role === 'bot') await botChild(info!);
  else if (role === 'bare') await bareChild(info!);
  else {
    const only = process.argv.includes('--burst') ? 'burst' : process.argv.includes('--sustained') ? 'sustained' : undefined;
    process.stdout.write(`${await runSlackBench(only ? { only } : {})}\n`);
  }
}
