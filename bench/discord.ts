/**
 * Discord acknowledgement latency (issue 3, item 12): bursts of 500 `/imagine` interactions
 * dispatched at once over the gateway, timed from the dispatch leaving the fake gateway to the
 * interaction callback arriving at the fake REST API (both clocks in the same process). Side by
 * side in the same run, alternating burst by burst so both see the same machine noise:
 * - the real bot (src/app.ts startBot: real discord.js, adapter, engine, store, providers): every
 *   interaction becomes a job that keeps running while later interactions arrive;
 * - a bare discord.js client that only defers.
 * Target: the bot's p99 within 1.2× of the bare client's.
 * Also: the time from the provider finishing an image to the final message in Discord, under
 * the burst load and for single jobs on an idle bot.
 *
 * Each client runs in its own process and the fakes (Discord, RunBlob) in a third, so the fakes'
 * work and the load generator are billed to neither. The same file is the child program
 * (`--role=fakes|bot|bare`).
 *
 *   node bench/discord.ts            # prints the markdown table
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer, type AddressInfo } from 'node:net';

export const DISCORD_BENCH_BURST = 500;
/** Bursts per client, alternating bare / bot. */
export const DISCORD_BENCH_ROUNDS = 2;
/**
 * A first full-size burst per client is not measured: it opens the HTTP connections (a burst
 * needs hundreds at once) and warms the JIT, which would otherwise decide the first p99.
 */
const WARMUP_BURSTS = 1;
export const DISCORD_ACK_TARGET_RATIO = 1.2;
const WARMUP_INTERACTIONS = 20;
/** Single jobs on an idle bot, for the completion → message time without load. */
const IDLE_JOBS = 10;
/** The providers' fast end ("7–30 s", reference/providers.md) would make the bench long; 3 s keeps every job in flight during the bursts. */
const PROVIDER_DURATION_MS = 3_000;
const BENCH_USER = { id: '300000000000000001', username: 'bench' };

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

// ---- children ---------------------------------------------------------------------------------

interface FakesInfo {
  bot: { apiUrl: string; token: string; applicationId: string };
  bare: { apiUrl: string; token: string; applicationId: string };
  runblobUrl: string;
  runblobKey: string;
}

type ToFakes =
  | { burst: { target: 'bot' | 'bare'; count: number; label: string; spacingMs?: number } }
  | { completion: { label: string; expected: number; timeoutMs: number } }
  | { close: true };
type FromFakes =
  | { ready: FakesInfo }
  | { latencies: number[]; unacked: number; refused: number }
  | { completion: number[]; afterDownload: number[]; missing: number };

async function fakesChild(): Promise<void> {
  const { startFakeDiscord } = await import('../test/fakes/discord/index.ts');
  const { startFakeRunblob } = await import('../test/fakes/runblob.ts');
  const fakeBot = await startFakeDiscord({ keepUploads: false });
  const fakeBare = await startFakeDiscord({ keepUploads: false });
  const runblob = await startFakeRunblob({ durationMs: PROVIDER_DURATION_MS });
  const send = (m: FromFakes) => process.send!(m);

  process.on('message', (m: ToFakes) => {
    void (async () => {
      if ('close' in m) {
        await Promise.all([fakeBot.close(), fakeBare.close(), runblob.close()]);
        process.exit(0);
      }
      if ('burst' in m) {
        const { target, count, label, spacingMs } = m.burst;
        const fake = target === 'bot' ? fakeBot : fakeBare;
        const refusedBefore = fake.refusals.length;
        const sent = [];
        for (let n = 0; n < count; n++) {
          if (spacingMs) await new Promise((r) => setTimeout(r, spacingMs));
          sent.push(fake.sendCommand({ name: 'imagine', user: BENCH_USER, options: [{ name: 'prompt', type: 3, value: `bench ${label} ${n} --model standard` }] }));
        }
        const interactions = await Promise.all(sent);
        await fake.waitFor(() => interactions.every((i) => i.ackedAt !== undefined), 30_000, 'every ack').catch(() => undefined);
        send({
          latencies: interactions.filter((i) => i.ackLatencyMs !== undefined).map((i) => i.ackLatencyMs!),
          unacked: interactions.filter((i) => i.ackedAt === undefined).length,
          refused: fake.refusals.length - refusedBefore,
        });
      }
      if ('completion' in m) {
        const { label, expected, timeoutMs } = m.completion;
        const finals = () =>
          [...fakeBot.messages.values()].filter((msg) => msg.attachments.length > 0 && msg.content.includes(`bench ${label} `));
        await fakeBot.waitFor(() => finals().length >= expected, timeoutMs, 'final messages').catch(() => undefined);
        const tasks = new Map([...runblob.tasks.values()].map((t) => [t.prompt, t]));
        const downloads = new Map(runblob.requests.filter((r) => r.kind === 'download').map((r) => [r.pathname.split('/').at(-1)!.replace(/\.png$/, ''), r.at]));
        const delays: number[] = [];
        const afterDownload: number[] = [];
        for (const msg of finals()) {
          const n = /bench \S+ (\d+)/.exec(msg.content)?.[1];
          const task = tasks.get(`bench ${label} ${n}`);
          const shownAt = msg.history.find((h) => h.attachments.length > 0)?.at;
          if (task?.completedAt === undefined || shownAt === undefined) continue;
          delays.push(shownAt - task.completedAt);
          const downloadedAt = downloads.get(task.uuid);
          if (downloadedAt !== undefined) afterDownload.push(shownAt - downloadedAt);
        }
        send({ completion: delays, afterDownload, missing: expected - delays.length });
      }
    })();
  });
  send({
    ready: {
      bot: { apiUrl: fakeBot.apiUrl, token: fakeBot.token, applicationId: fakeBot.applicationId },
      bare: { apiUrl: fakeBare.apiUrl, token: fakeBare.token, applicationId: fakeBare.applicationId },
      runblobUrl: runblob.url,
      runblobKey: runblob.apiKey,
    },
  });
}

async function botChild(info: FakesInfo): Promise<void> {
  const { parseConfig } = await import('../src/config.ts');
  const { startBot } = await import('../src/app.ts');
  const { createLogger } = await import('../src/log.ts');
  const dataDir = await mkdtemp(join(tmpdir(), 'imagine-discord-bench-'));
  // A known port, so PUBLIC_URL can be set: RunBlob then calls back when a task ends (the
  // recommended deployment) instead of the bot finding out by polling.
  const port = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const p = (probe.address() as AddressInfo).port;
      probe.close(() => resolve(p));
    });
  });
  const config = parseConfig({
    DISCORD_TOKEN: info.bot.token,
    DISCORD_APPLICATION_ID: info.bot.applicationId,
    DISCORD_API_URL: info.bot.apiUrl,
    RUNBLOB_API_KEY: info.runblobKey,
    RUNBLOB_API_URL: info.runblobUrl,
    STORE_URL: `sqlite://${join(dataDir, 'store.sqlite')}`,
    DATA_DIR: dataDir,
    FETCH_ALLOW_HOSTS: '127.0.0.1',
    QUOTA_EXEMPT_USERS: BENCH_USER.id,
    PORT: String(port),
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    LOG_LEVEL: 'silent',
  });
  const bot = await startBot(config, { log: createLogger({ level: 'silent', pretty: false, destination: { write: () => undefined } }) });
  process.on('message', (m: { close?: boolean }) => {
    if (m.close) void bot.stop().then(() => rm(dataDir, { recursive: true, force: true })).then(() => process.exit(0));
  });
  process.send!({ ready: {} });
}

async function bareChild(info: FakesInfo): Promise<void> {
  const { Client, Events, GatewayIntentBits } = await import('discord.js');
  const client = new Client({ intents: [GatewayIntentBits.Guilds], rest: { api: info.bare.apiUrl } });
  client.on(Events.InteractionCreate, (i) => {
    if (i.isChatInputCommand()) void i.deferReply().catch(() => undefined);
  });
  const ready = new Promise<void>((resolve) => client.once(Events.ClientReady, () => resolve()));
  await client.login(info.bare.token);
  await ready;
  process.on('message', (m: { close?: boolean }) => {
    if (m.close) void client.destroy().then(() => process.exit(0));
  });
  process.send!({ ready: {} });
}

function spawnRole(role: 'fakes' | 'bot' | 'bare', info?: FakesInfo): Promise<{ child: ChildProcess; ready: FakesInfo }> {
  const child = fork(fileURLToPath(import.meta.url), [`--role=${role}`], {
    execPath: process.execPath,
    env: { ...process.env, ...(info ? { DISCORD_BENCH_FAKES: JSON.stringify(info) } : {}) },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`bench ${role} process exited with ${code}`)));
    child.on('message', (m: FromFakes) => {
      if ('ready' in m) resolve({ child, ready: m.ready });
    });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
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

function ask<T extends FromFakes>(fakes: ChildProcess, message: ToFakes, accept: (m: FromFakes) => m is T): Promise<T> {
  return new Promise((resolve) => {
    const onMessage = (m: FromFakes) => {
      if (!accept(m)) return;
      fakes.off('message', onMessage);
      resolve(m);
    };
    fakes.on('message', onMessage);
    fakes.send(message);
  });
}

const isBurst = (m: FromFakes): m is Extract<FromFakes, { latencies: number[] }> => 'latencies' in m;
const isCompletion = (m: FromFakes): m is Extract<FromFakes, { completion: number[] }> => 'completion' in m;

export async function runDiscordBench(opts: { burst?: number; rounds?: number } = {}): Promise<string> {
  const burst = opts.burst ?? DISCORD_BENCH_BURST;
  const rounds = opts.rounds ?? DISCORD_BENCH_ROUNDS;
  const fakes = await spawnRole('fakes');
  const children = [fakes.child];
  const bot: number[] = [];
  const bare: number[] = [];
  let unacked = 0;
  let refused = 0;
  let loaded: number[] = [];
  let loadedAfterDownload: number[] = [];
  let idle: number[] = [];
  let idleAfterDownload: number[] = [];
  let missing = 0;
  try {
    const [botProc, bareProc] = await Promise.all([spawnRole('bot', fakes.ready), spawnRole('bare', fakes.ready)]);
    children.push(botProc.child, bareProc.child);
    const run = async (target: 'bot' | 'bare', count: number, label: string, spacingMs?: number) => {
      const r = await ask(fakes.child, { burst: { target, count, label, ...(spacingMs && { spacingMs }) } }, isBurst);
      unacked += r.unacked;
      refused += r.refused;
      return r.latencies;
    };
    await run('bare', WARMUP_INTERACTIONS, 'warm-bare', 20);
    await run('bot', WARMUP_INTERACTIONS, 'warm', 20);
    for (let r = 0; r < WARMUP_BURSTS + rounds; r++) {
      const bareAcks = await run('bare', burst, `bare${r}`);
      const botAcks = await run('bot', burst, `r${r}`);
      if (r < WARMUP_BURSTS) continue;
      bare.push(...bareAcks);
      bot.push(...botAcks);
    }
    for (let r = 0; r < WARMUP_BURSTS + rounds; r++) {
      const c = await ask(fakes.child, { completion: { label: `r${r}`, expected: burst, timeoutMs: 240_000 } }, isCompletion);
      loaded.push(...c.completion);
      loadedAfterDownload.push(...c.afterDownload);
      missing += c.missing;
    }
    // An idle bot: one job at a time.
    for (let n = 0; n < IDLE_JOBS; n++) {
      await run('bot', 1, `idle${n}`);
      const c = await ask(fakes.child, { completion: { label: `idle${n}`, expected: 1, timeoutMs: 60_000 } }, isCompletion);
      idle.push(...c.completion);
      idleAfterDownload.push(...c.afterDownload);
      missing += c.missing;
    }
  } finally {
    for (const child of children.reverse()) await stopChild(child);
  }

  const sort = (xs: number[]) => [...xs].sort((a, b) => a - b);
  const botSorted = sort(bot);
  const bareSorted = sort(bare);
  loaded = sort(loaded);
  idle = sort(idle);
  loadedAfterDownload = sort(loadedAfterDownload);
  idleAfterDownload = sort(idleAfterDownload);
  const row = (name: string, xs: number[]) =>
    `| ${name} | ${xs.length} | ${percentile(xs, 50).toFixed(1)} | ${percentile(xs, 99).toFixed(1)} | ${(xs.at(-1) ?? NaN).toFixed(1)} |`;
  const ratio = percentile(botSorted, 99) / percentile(bareSorted, 99);
  return [
    `### Discord: acknowledgement latency (bursts of ${burst} /imagine interactions dispatched at once, ${rounds} measured bursts per client, alternating, after ${WARMUP_BURSTS} unmeasured warm-up burst)`,
    '',
    '| client | interactions | p50 ms | p99 ms | max ms |',
    '|---|---|---|---|---|',
    row('imagine bot (discord.js + adapter + engine, jobs running)', botSorted),
    row('bare discord.js client (defer only)', bareSorted),
    '',
    `p99 ratio bot / bare: **${ratio.toFixed(2)}×** (target ≤ ${DISCORD_ACK_TARGET_RATIO}×: ${ratio <= DISCORD_ACK_TARGET_RATIO ? 'met' : 'NOT met'}). ` +
      `Unacknowledged: ${unacked}; requests fake Discord refused: ${refused}.`,
    '',
    `### Discord: provider completion → final message (fake RunBlob, ${PROVIDER_DURATION_MS / 1000} s per image, with RunBlob callbacks to PUBLIC_URL)`,
    '',
    '| situation | jobs | p50 ms | p99 ms | max ms |',
    '|---|---|---|---|---|',
    row(`${burst * (rounds + WARMUP_BURSTS)} jobs from the bursts, all in flight at once`, loaded),
    row('— of which: result downloaded → final message (Discord side)', loadedAfterDownload),
    row('single jobs on an idle bot', idle),
    row('— of which: result downloaded → final message (Discord side)', idleAfterDownload),
    '',
    `Jobs whose result did not arrive: ${missing}. The time includes noticing the completion (callback, then a status fetch within the engine's RunBlob budget of 50 requests/s, shared with the creates of later jobs), downloading the PNG, and the multipart edit of the placeholder (discord.js holds every bot request to 50/s).`,
  ].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const role = process.argv.find((a) => a.startsWith('--role='))?.slice('--role='.length);
  const info = process.env.DISCORD_BENCH_FAKES ? (JSON.parse(process.env.DISCORD_BENCH_FAKES) as FakesInfo) : undefined;
  if (role === 'fakes') await fakesChild();
  else if (role === 'bot') await botChild(info!);
  else if (role === 'bare') await bareChild(info!);
  else process.stdout.write(`${await runDiscordBench()}\n`);
}
