/**
 * Discord acknowledgement latency (issue 3, item 12; issue 13): bursts of 500 `/imagine`
 * interactions dispatched at once over the gateway, timed from the dispatch leaving the fake
 * gateway to the interaction callback arriving at the fake REST API (both clocks in the same
 * process). Side by side in the same run, the bare client's bursts first (on a quiet machine),
 * then the bot's:
 * - the real bot (src/app.ts startBot: real discord.js, adapter, engine, store, providers), run
 *   with the NODE_OPTIONS it ships with: every interaction becomes a job that keeps running while
 *   later interactions arrive;
 * - a bare discord.js client that only defers (Node's defaults).
 * Then, in fresh processes, the sustained shape (runDiscordSustainedBench): 50 interactions a
 * second, alternating between the two clients round by round, with jobs finishing and posting
 * their results behind the acks.
 * Targets: the bot's p99 within 1.2× of the bare client's (issue 3); in bursts, within 1.0× (issue 13).
 * Also: the time from the provider finishing an image to the final message in Discord, under
 * the burst load and for single jobs on an idle bot.
 *
 * Each client runs in its own process, fake Discord (and the load generator) in a third and fake
 * RunBlob in a fourth, so the fakes' work is billed to neither client and RunBlob's PNG rendering
 * does not stall the fake Discord that timestamps the acks (real Discord and RunBlob do not share
 * an event loop). The same file is the child program (`--role=fakes|provider|bot|bare`).
 *
 *   node bench/discord.ts                      # prints the markdown tables
 *   node bench/discord.ts --acks-only          # only the acknowledgement part (seconds, not minutes)
 *   node bench/discord.ts --sustained          # the sustained shape instead: 500 per client at 50/s
 *   node bench/discord.ts --profile=DIR        # also CPU profiles of each client per measured burst (with --sustained: the bot's per round)
 */
import { ask, discordBotChild, forkRole, percentile, shippedNodeOptions, stopChild } from './processes.ts';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { mkdir, writeFile } from 'node:fs/promises';
import { constants, monitorEventLoopDelay, performance, PerformanceObserver } from 'node:perf_hooks';

export const DISCORD_BENCH_BURST = 500;
/** Bursts per client, all of the bare client's, then the bot's. */
export const DISCORD_BENCH_ROUNDS = 4;
/**
 * A first full-size burst per client is not measured: it opens the HTTP connections (a burst
 * needs hundreds at once) and warms the JIT, which would otherwise decide the first p99.
 */
const WARMUP_BURSTS = 1;
/** Sustained phase (bench/slack.ts's sustained shape): interactions per client, their rate, and rounds alternating bare / bot. */
export const DISCORD_BENCH_SUSTAINED = 500;
export const DISCORD_BENCH_PER_SECOND = 50;
export const DISCORD_BENCH_SUSTAINED_ROUNDS = 10;
export const DISCORD_ACK_TARGET_RATIO = 1.2;
/** Issue 13's target for bursts: "Discord burst ack p99 ≤ 1.0× the bare discord.js client". */
const DISCORD_BURST_TARGET_RATIO_ISSUE_13 = 1.0;
/** The targets each shape is held to: [ratio, whose]. */
const BURST_TARGETS: [number, string][] = [
  [DISCORD_ACK_TARGET_RATIO, 'issue 3'],
  [DISCORD_BURST_TARGET_RATIO_ISSUE_13, 'issue 13'],
];
const SUSTAINED_TARGETS: [number, string][] = [[DISCORD_ACK_TARGET_RATIO, 'issue 3']];
const WARMUP_INTERACTIONS = 20;
/** Single jobs on an idle bot, for the completion → message time without load. */
const IDLE_JOBS = 10;
/** The providers' fast end ("7–30 s", docs/providers.md "Generation times") would make the bench long; 3 s keeps every job in flight during the bursts. */
const PROVIDER_DURATION_MS = 3_000;
const BENCH_USER = { id: '300000000000000001', username: 'bench' };

// ---- probes (bench --diag / --profile) ------------------------------------------------------------

/** Wall-clock milliseconds comparable across the bench's processes (one machine, one clock). */
const absNow = () => performance.timeOrigin + performance.now();

interface EldStats {
  p50: number;
  p99: number;
  max: number;
}
/** One interaction as the fake saw it (absolute ms). */
interface AckTimes {
  id: string;
  dispatchedAt: number;
  ackedAt: number;
}
/** What a client process did during one burst. */
interface ClientProbe {
  eld: EldStats;
  cpuMs: number;
  /** Garbage-collection pauses while probed, by kind (perf_hooks 'gc' entries): count, total and longest ms. */
  gc: Record<string, { count: number; totalMs: number; maxMs: number }>;
  /** Per acknowledged interaction id: interactionCreate emitted, deferReply called, other REST requests in flight then. */
  acks: Record<string, { emittedAt: number; deferAt: number; restBusy: number }>;
}
type ToClient = { close: true } | { probe: 'start' } | { probe: 'stop' } | { profile: 'start' } | { profile: 'stop'; file: string };
type FromClient = { ready: Record<string, never> } | { started: true } | { probe: ClientProbe } | { profiled: string };

function eldRecorder(): { reset(): void; read(): EldStats } {
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  return {
    reset: () => h.reset(),
    read: () => ({ p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6 }),
  };
}

/**
 * Installed identically in the bot and the bare client, before discord.js is used: timestamps
 * interactionCreate and the call of deferReply (the bot sends the callback past @discordjs/rest's
 * queue, rest-request.ts, so the queue cannot time it in both), counts the other REST calls in
 * flight at that moment, and answers probe / profile requests from the parent.
 */
async function installClientProbe(): Promise<void> {
  const require = createRequire(import.meta.url);
  // discord.js is CommonJS and requires @discordjs/rest's CommonJS build: patch those very classes.
  const { REST } = require('@discordjs/rest') as { REST: { prototype: { queueRequest(r: { fullRoute: string }): Promise<unknown> } } };
  type Patchable = { prototype: Record<string, (this: { id: string }, ...args: unknown[]) => unknown> };
  const { Client, CommandInteraction } = require('discord.js') as { Client: { prototype: { emit(event: string, ...args: unknown[]): boolean } }; CommandInteraction: Patchable };
  const emitted = new Map<string, number>();
  let acks: ClientProbe['acks'] = {};
  let restBusy = 0;
  const deferReply = CommandInteraction.prototype.deferReply!;
  CommandInteraction.prototype.deferReply = function (this: { id: string }, ...args: unknown[]) {
    acks[this.id] = { emittedAt: emitted.get(this.id) ?? NaN, deferAt: absNow(), restBusy };
    emitted.delete(this.id);
    return deferReply.apply(this, args);
  };
  const queue = REST.prototype.queueRequest;
  REST.prototype.queueRequest = function (this: unknown, request: { fullRoute: string }) {
    // A callback, told as @discordjs/rest's generateRouteData tells it (the bare client's process
    // loads nothing of the bot's: not even its route pattern).
    if (request.fullRoute.startsWith('/interactions/') && request.fullRoute.endsWith('/callback')) return queue.call(this, request);
    restBusy += 1;
    const p = queue.call(this, request);
    void p.then(
      () => (restBusy -= 1),
      () => (restBusy -= 1),
    );
    return p;
  };
  const emit = Client.prototype.emit;
  Client.prototype.emit = function (this: unknown, event: string, ...args: unknown[]) {
    if (event === 'interactionCreate') emitted.set((args[0] as { id: string }).id, absNow());
    return emit.call(this, event, ...args);
  };
  const eld = eldRecorder();
  let gc: ClientProbe['gc'] = {};
  const gcKinds: Record<number, string> = {
    [constants.NODE_PERFORMANCE_GC_MINOR]: 'scavenge',
    [constants.NODE_PERFORMANCE_GC_MAJOR]: 'mark-compact',
    [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental marking',
    [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak callbacks',
  };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = gcKinds[(e as PerformanceEntry & { detail: { kind: number } }).detail.kind] ?? 'other';
      const k = (gc[kind] ??= { count: 0, totalMs: 0, maxMs: 0 });
      k.count += 1;
      k.totalMs += e.duration;
      k.maxMs = Math.max(k.maxMs, e.duration);
    }
  }).observe({ entryTypes: ['gc'] });
  let cpu = process.cpuUsage();
  const { Session } = await import('node:inspector/promises');
  let session: InstanceType<typeof Session> | undefined;
  process.on('message', (m: ToClient) => {
    void (async () => {
      if ('probe' in m && m.probe === 'start') {
        acks = {};
        gc = {};
        eld.reset();
        cpu = process.cpuUsage();
        process.send!({ started: true } satisfies FromClient);
      } else if ('probe' in m && m.probe === 'stop') {
        const used = process.cpuUsage(cpu);
        process.send!({ probe: { eld: eld.read(), cpuMs: (used.user + used.system) / 1000, gc, acks } } satisfies FromClient);
      } else if ('profile' in m && m.profile === 'start') {
        session = new Session();
        session.connect();
        await session.post('Profiler.enable');
        await session.post('Profiler.setSamplingInterval', { interval: 200 });
        await session.post('Profiler.start');
        process.send!({ started: true } satisfies FromClient);
      } else if ('profile' in m && m.profile === 'stop' && session) {
        const { profile } = await session.post('Profiler.stop');
        await writeFile(m.file, JSON.stringify(profile));
        session.disconnect();
        session = undefined;
        process.send!({ profiled: m.file } satisfies FromClient);
      }
    })();
  });
}

// ---- children ---------------------------------------------------------------------------------

interface FakesInfo {
  bot: { apiUrl: string; token: string; applicationId: string };
  bare: { apiUrl: string; token: string; applicationId: string };
  runblobUrl: string;
  runblobKey: string;
}

type ToFakes =
  | { burst: { target: 'bot' | 'bare'; count: number; label: string; spacingMs?: number; withTimes?: boolean } }
  | { finals: { label: string; expected: number; timeoutMs: number } }
  | { close: true };
/** A final message (with the image) of a bench job, as fake Discord saw it; `shownAt` is Date.now() there. */
interface FinalMessage {
  prompt: string;
  shownAt: number;
}
type FromFakes =
  | { ready: FakesInfo }
  | { latencies: number[]; unacked: number; refused: number; fakesEld: EldStats; times?: AckTimes[] }
  | { finals: FinalMessage[] };

/** A task as fake RunBlob saw it; Date.now() there (one machine, one wall clock). */
interface ProviderTask {
  prompt: string;
  completedAt: number | undefined;
  downloadedAt: number | undefined;
}
type ToProvider = { tasks: true } | { close: true };
type FromProvider = { ready: FakesInfo } | { tasks: ProviderTask[] };

/**
 * Fake RunBlob in a process of its own: it renders real PNGs, CPU that real Discord does not
 * share with RunBlob, so in the fake Discord's process it would delay the acks being measured.
 */
async function providerChild(): Promise<void> {
  const { startFakeRunblob } = await import('../test/fakes/runblob.ts');
  const runblob = await startFakeRunblob({ durationMs: PROVIDER_DURATION_MS });
  const send = (m: FromProvider) => process.send!(m);
  process.on('message', (m: ToProvider) => {
    void (async () => {
      if ('close' in m) {
        await runblob.close();
        process.exit(0);
      }
      if ('tasks' in m) {
        const downloads = new Map(runblob.requests.filter((r) => r.kind === 'download').map((r) => [r.pathname.split('/').at(-1)!.replace(/\.png$/, ''), r.at]));
        send({
          tasks: [...runblob.tasks.values()].map((t) => ({ prompt: t.prompt, completedAt: t.completedAt, downloadedAt: downloads.get(t.uuid) })),
        });
      }
    })();
  });
  send({ ready: { runblobUrl: runblob.url, runblobKey: runblob.apiKey } as FakesInfo });
}

async function fakesChild(): Promise<void> {
  const { startFakeDiscord } = await import('../test/fakes/discord/index.ts');
  const fakeBot = await startFakeDiscord({ keepUploads: false });
  const fakeBare = await startFakeDiscord({ keepUploads: false });
  const send = (m: FromFakes) => process.send!(m);
  const eld = eldRecorder();

  process.on('message', (m: ToFakes) => {
    void (async () => {
      if ('close' in m) {
        await Promise.all([fakeBot.close(), fakeBare.close()]);
        process.exit(0);
      }
      if ('burst' in m) {
        const { target, count, label, spacingMs, withTimes } = m.burst;
        const fake = target === 'bot' ? fakeBot : fakeBare;
        const refusedBefore = fake.refusals.length;
        eld.reset();
        const sent = [];
        // Spaced on a schedule, not by sleeping between sends: the rate holds however long a send takes.
        const start = performance.now();
        for (let n = 0; n < count; n++) {
          const wait = spacingMs ? start + n * spacingMs - performance.now() : 0;
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          sent.push(fake.sendCommand({ name: 'imagine', user: BENCH_USER, options: [{ name: 'prompt', type: 3, value: `bench ${label} ${n} --model standard` }] }));
        }
        const interactions = await Promise.all(sent);
        await fake.waitFor(() => interactions.every((i) => i.ackedAt !== undefined), 30_000, 'every ack').catch(() => undefined);
        send({
          latencies: interactions.filter((i) => i.ackLatencyMs !== undefined).map((i) => i.ackLatencyMs!),
          unacked: interactions.filter((i) => i.ackedAt === undefined).length,
          refused: fake.refusals.length - refusedBefore,
          fakesEld: eld.read(),
          ...(withTimes && {
            times: interactions
              .filter((i) => i.ackedAt !== undefined)
              .map((i) => ({ id: i.id, dispatchedAt: performance.timeOrigin + i.dispatchedAt, ackedAt: performance.timeOrigin + i.ackedAt! })),
          }),
        });
      }
      if ('finals' in m) {
        const { label, expected, timeoutMs } = m.finals;
        const finals = () =>
          [...fakeBot.messages.values()].filter((msg) => msg.attachments.length > 0 && msg.content.includes(`bench ${label} `));
        await fakeBot.waitFor(() => finals().length >= expected, timeoutMs, 'final messages').catch(() => undefined);
        const shown: FinalMessage[] = [];
        for (const msg of finals()) {
          const n = /bench \S+ (\d+)/.exec(msg.content)?.[1];
          const shownAt = msg.history.find((h) => h.attachments.length > 0)?.at;
          if (n !== undefined && shownAt !== undefined) shown.push({ prompt: `bench ${label} ${n}`, shownAt });
        }
        send({ finals: shown });
      }
    })();
  });
  send({
    ready: {
      bot: { apiUrl: fakeBot.apiUrl, token: fakeBot.token, applicationId: fakeBot.applicationId },
      bare: { apiUrl: fakeBare.apiUrl, token: fakeBare.token, applicationId: fakeBare.applicationId },
    } as FakesInfo,
  });
}

async function botChild(info: FakesInfo): Promise<void> {
  await installClientProbe();
  await discordBotChild({ ...info.bot, runblobUrl: info.runblobUrl, runblobKey: info.runblobKey }, BENCH_USER.id, 'imagine-discord-bench-');
}

async function bareChild(info: FakesInfo): Promise<void> {
  await installClientProbe();
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

/** A child process, with `nodeOptions` as its NODE_OPTIONS when given. */
const spawnRole = (role: 'fakes' | 'provider' | 'bot' | 'bare', info?: FakesInfo, nodeOptions?: string) =>
  forkRole<FakesInfo>(fileURLToPath(import.meta.url), role, {
    ...(info && { DISCORD_BENCH_FAKES: JSON.stringify(info) }),
    ...(nodeOptions !== undefined && { NODE_OPTIONS: nodeOptions }),
  });

type BurstAnswer = Extract<FromFakes, { latencies: number[] }>;

interface BurstDiag {
  fakesEld: EldStats;
  client: ClientProbe;
  times: AckTimes[];
}

/** Where an acknowledgement's time went, per client, over the measured bursts. */
function diagnosticsTable(diag: Record<'bot' | 'bare', BurstDiag[]>): string {
  const p = (xs: number[]) => `${percentile(xs, 50).toFixed(1)} / ${percentile(xs, 99).toFixed(1)}`;
  const row = (name: string, bursts: BurstDiag[]) => {
    const toEmit: number[] = [];
    const emitToDefer: number[] = [];
    const deferToFake: number[] = [];
    const busy: number[] = [];
    for (const b of bursts) {
      for (const t of b.times) {
        const c = b.client.acks[t.id];
        if (!c) continue;
        toEmit.push(c.emittedAt - t.dispatchedAt);
        emitToDefer.push(c.deferAt - c.emittedAt);
        deferToFake.push(t.ackedAt - c.deferAt);
        busy.push(c.restBusy);
      }
    }
    const eldP99 = Math.max(...bursts.map((b) => b.client.eld.p99));
    const eldMax = Math.max(...bursts.map((b) => b.client.eld.max));
    const cpu = bursts.map((b) => b.client.cpuMs.toFixed(0)).join(', ');
    const fakesEld = Math.max(...bursts.map((b) => b.fakesEld.max));
    const gc = new Map<string, { count: number; totalMs: number; maxMs: number }>();
    for (const b of bursts)
      for (const [kind, k] of Object.entries(b.client.gc)) {
        const all = gc.get(kind) ?? { count: 0, totalMs: 0, maxMs: 0 };
        gc.set(kind, { count: all.count + k.count, totalMs: all.totalMs + k.totalMs, maxMs: Math.max(all.maxMs, k.maxMs) });
      }
    const gcText = [...gc].map(([kind, k]) => `${kind} ${k.count}× ${k.totalMs.toFixed(0)} ms (max ${k.maxMs.toFixed(1)})`).join('; ') || 'none';
    return `| ${name} | ${p(sorted(toEmit))} | ${p(sorted(emitToDefer))} | ${p(sorted(deferToFake))} | ${percentile(sorted(busy), 50)} / ${sorted(busy).at(-1) ?? NaN} | ${eldP99.toFixed(1)} / ${eldMax.toFixed(1)} | ${cpu} | ${gcText} | ${fakesEld.toFixed(1)} |`;
  };
  return [
    '| client | dispatch → interactionCreate p50 / p99 ms | interactionCreate → deferReply called p50 / p99 ms | deferReply → callback at fake Discord p50 / p99 ms | other REST calls in flight at ack p50 / max | event-loop delay p99 / max ms | CPU ms per burst | GC pauses while measured (perf_hooks) | fakes event-loop delay max ms |',
    '|---|---|---|---|---|---|---|---|---|',
    row('imagine bot', diag.bot),
    row('bare discord.js', diag.bare),
  ].join('\n');
}

/** The four processes of a run, and the ways to send interactions to a client and measure them. */
async function startRun() {
  // The bot runs as shipped. Read before anything is forked: a Dockerfile without NODE_OPTIONS fails here, leaving no child behind.
  const botOptions = await shippedNodeOptions();
  const [fakes, provider] = await Promise.all([spawnRole('fakes'), spawnRole('provider')]);
  const children = [fakes.child, provider.child];
  const info: FakesInfo = { ...fakes.ready, runblobUrl: provider.ready.runblobUrl, runblobKey: provider.ready.runblobKey };
  const diag: Record<'bot' | 'bare', BurstDiag[]> = { bot: [], bare: [] };
  const tally = { unacked: 0, refused: 0 };
  const stop = async () => {
    for (const child of children.reverse()) await stopChild(child);
  };
  try {
    const [botProc, bareProc] = await Promise.all([spawnRole('bot', info, botOptions), spawnRole('bare', info)]);
    children.push(botProc.child, bareProc.child);
    const clientOf = { bot: botProc.child, bare: bareProc.child };
    /** `count` interactions to `target`, at once or `spacingMs` apart; their ack latencies. */
    const run = async (target: 'bot' | 'bare', count: number, label: string, spacingMs?: number) => {
      const r = await ask<BurstAnswer>(fakes.child, { burst: { target, count, label, ...(spacingMs && { spacingMs }) } } satisfies ToFakes, 'latencies');
      tally.unacked += r.unacked;
      tally.refused += r.refused;
      return r.latencies;
    };
    /** `run`, measured: the client's probe runs exactly while the interactions are in the air. */
    const measured = async (target: 'bot' | 'bare', count: number, label: string, opts: { spacingMs?: number; profileFile?: string } = {}) => {
      const client = clientOf[target];
      const { spacingMs, profileFile } = opts;
      if (profileFile) await ask(client, { profile: 'start' } satisfies ToClient, 'started');
      await ask(client, { probe: 'start' } satisfies ToClient, 'started');
      const r = await ask<BurstAnswer>(fakes.child, { burst: { target, count, label, withTimes: true, ...(spacingMs && { spacingMs }) } } satisfies ToFakes, 'latencies');
      const { probe } = await ask<Extract<FromClient, { probe: ClientProbe }>>(client, { probe: 'stop' } satisfies ToClient, 'probe');
      if (profileFile) await ask(client, { profile: 'stop', file: profileFile } satisfies ToClient, 'profiled');
      tally.unacked += r.unacked;
      tally.refused += r.refused;
      diag[target].push({ fakesEld: r.fakesEld, client: probe, times: r.times ?? [] });
      return r.latencies;
    };
    /** Provider completion → final message, and result downloaded → final message, for one label's jobs. */
    const completion = async (label: string, expected: number, timeoutMs: number) => {
      const { finals } = await ask<Extract<FromFakes, { finals: FinalMessage[] }>>(fakes.child, { finals: { label, expected, timeoutMs } } satisfies ToFakes, 'finals');
      const { tasks } = await ask<Extract<FromProvider, { tasks: ProviderTask[] }>>(provider.child, { tasks: true } satisfies ToProvider, 'tasks');
      const byPrompt = new Map(tasks.map((t) => [t.prompt, t]));
      const delays: number[] = [];
      const afterDownload: number[] = [];
      for (const f of finals) {
        const task = byPrompt.get(f.prompt);
        if (task?.completedAt === undefined) continue;
        delays.push(f.shownAt - task.completedAt);
        if (task.downloadedAt !== undefined) afterDownload.push(f.shownAt - task.downloadedAt);
      }
      return { completion: delays, afterDownload, missing: expected - delays.length };
    };
    await run('bare', WARMUP_INTERACTIONS, 'warm-bare', 20);
    await run('bot', WARMUP_INTERACTIONS, 'warm', 20);
    return { run, measured, completion, diag, tally, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Ascending, without the values a missing timestamp made NaN. */
const sorted = (xs: number[]) => xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);

/** The acknowledgement table of a phase: both clients' latencies, their p99 ratio, and where the time went. */
function acksTable(
  title: string,
  bot: number[],
  bare: number[],
  tally: { unacked: number; refused: number },
  diag: Record<'bot' | 'bare', BurstDiag[]>,
  targets: [number, string][],
): string {
  const row = (name: string, xs: number[]) =>
    `| ${name} | ${xs.length} | ${percentile(xs, 50).toFixed(1)} | ${percentile(xs, 99).toFixed(1)} | ${(xs.at(-1) ?? NaN).toFixed(1)} |`;
  const botSorted = sorted(bot);
  const bareSorted = sorted(bare);
  const ratio = percentile(botSorted, 99) / percentile(bareSorted, 99);
  return [
    title,
    '',
    '| client | interactions | p50 ms | p99 ms | max ms |',
    '|---|---|---|---|---|',
    row('imagine bot (discord.js + adapter + engine, jobs running)', botSorted),
    row('bare discord.js client (defer only)', bareSorted),
    '',
    `p99 ratio bot / bare: **${ratio.toFixed(2)}×** (${targets.map(([t, whose]) => `target ≤ ${t.toFixed(1)}× (${whose}): ${ratio <= t ? 'met' : 'NOT met'}`).join('; ')}). ` +
      `Unacknowledged: ${tally.unacked}; requests fake Discord refused: ${tally.refused}.`,
    '',
    'Where the time goes (measured interactions; clocks of the processes compared through `performance.timeOrigin`):',
    '',
    diagnosticsTable(diag),
  ].join('\n');
}

/**
 * Bursts: `burst` interactions at once, `rounds` times per client, the bare client's first, then
 * (unless `acksOnly`) the time from each job's provider completion to its final message.
 */
export async function runDiscordBench(opts: { burst?: number; rounds?: number; acksOnly?: boolean; profileDir?: string } = {}): Promise<string> {
  const burst = opts.burst ?? DISCORD_BENCH_BURST;
  const rounds = opts.rounds ?? DISCORD_BENCH_ROUNDS;
  const bot: number[] = [];
  const bare: number[] = [];
  let loaded: number[] = [];
  let loadedAfterDownload: number[] = [];
  let idle: number[] = [];
  let idleAfterDownload: number[] = [];
  let missing = 0;
  const { run, measured, completion, diag, tally, stop } = await startRun();
  try {
    // The bare client's bursts first, while the bot is idle: the bot's jobs keep running long after
    // its bursts (CPU on the same two cores), so alternating would slow the bare client down with
    // the bot's work and flatter the ratio. This order measures the bare client on a quiet machine
    // and the bot with its own earlier jobs still in flight: the strict comparison.
    for (const target of ['bare', 'bot'] as const) {
      for (let r = 0; r < WARMUP_BURSTS + rounds; r++) {
        const label = target === 'bot' ? `r${r}` : `bare${r}`;
        if (r < WARMUP_BURSTS) {
          await run(target, burst, label);
          continue;
        }
        const acks = await measured(target, burst, label, opts.profileDir ? { profileFile: join(opts.profileDir, `${target}-burst${r}.cpuprofile`) } : {});
        (target === 'bot' ? bot : bare).push(...acks);
      }
    }
    if (!opts.acksOnly) {
      for (let r = 0; r < WARMUP_BURSTS + rounds; r++) {
        const c = await completion(`r${r}`, burst, 240_000);
        loaded.push(...c.completion);
        loadedAfterDownload.push(...c.afterDownload);
        missing += c.missing;
      }
      // An idle bot: one job at a time.
      for (let n = 0; n < IDLE_JOBS; n++) {
        await run('bot', 1, `idle${n}`);
        const c = await completion(`idle${n}`, 1, 60_000);
        idle.push(...c.completion);
        idleAfterDownload.push(...c.afterDownload);
        missing += c.missing;
      }
    }
  } finally {
    await stop();
  }

  loaded = sorted(loaded);
  idle = sorted(idle);
  loadedAfterDownload = sorted(loadedAfterDownload);
  idleAfterDownload = sorted(idleAfterDownload);
  const row = (name: string, xs: number[]) =>
    `| ${name} | ${xs.length} | ${percentile(xs, 50).toFixed(1)} | ${percentile(xs, 99).toFixed(1)} | ${(xs.at(-1) ?? NaN).toFixed(1)} |`;
  return [
    acksTable(
      `### Discord: acknowledgement latency (bursts of ${burst} /imagine interactions dispatched at once, ${rounds} measured bursts per client, the bare client's first, after ${WARMUP_BURSTS} unmeasured warm-up burst)`,
      bot,
      bare,
      tally,
      diag,
      BURST_TARGETS,
    ),
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
    `Jobs whose result did not arrive: ${missing}.${opts.acksOnly ? ' (--acks-only: not measured.)' : ''} The time includes noticing the completion (callback, then a status fetch within the engine's RunBlob budget of 50 requests/s, shared with the creates of later jobs), downloading the PNG, and the multipart edit of the placeholder (an interaction-token call, which discord.js's count of the 50/s global limit no longer holds back: src/platforms/discord/messages.ts).`,
  ].join('\n');
}

/**
 * Sustained: `count` interactions per client at `perSecond`, in `rounds` rounds alternating bare
 * client and bot (bench/slack.ts's sustained shape, so both see the same machine), in fresh
 * processes. Each bot interaction is a job that keeps running (3 s at the provider, then its
 * download and final message) while later ones arrive: the acks are measured with jobs starting,
 * waiting and finishing behind them, not only starting as in a burst.
 */
export async function runDiscordSustainedBench(opts: { count?: number; perSecond?: number; rounds?: number; profileDir?: string } = {}): Promise<string> {
  const count = opts.count ?? DISCORD_BENCH_SUSTAINED;
  const perSecond = opts.perSecond ?? DISCORD_BENCH_PER_SECOND;
  const rounds = opts.rounds ?? DISCORD_BENCH_SUSTAINED_ROUNDS;
  const spacingMs = 1000 / perSecond;
  const bot: number[] = [];
  const bare: number[] = [];
  const { measured, completion, diag, tally, stop } = await startRun();
  let finals = 0;
  let expected = 0;
  try {
    const perRound = Math.ceil(count / rounds);
    for (let r = 0; r < rounds; r++) {
      const n = Math.min(perRound, count - r * perRound);
      if (n <= 0) break;
      bare.push(...(await measured('bare', n, `sbare${r}`, { spacingMs })));
      bot.push(...(await measured('bot', n, `s${r}`, { spacingMs, ...(opts.profileDir && { profileFile: join(opts.profileDir, `bot-sustained${r}.cpuprofile`) }) })));
      expected += n;
    }
    // The bot really did the jobs: each got its final message with the image.
    for (let r = 0; r < rounds; r++) {
      const n = Math.min(perRound, count - r * perRound);
      if (n > 0) finals += (await completion(`s${r}`, n, 120_000)).completion.length;
    }
  } finally {
    await stop();
  }
  return [
    acksTable(
      `### Discord: acknowledgement latency, sustained (${count} /imagine interactions per client at ${perSecond}/s, ${rounds} rounds alternating bare client and bot)`,
      bot,
      bare,
      tally,
      diag,
      SUSTAINED_TARGETS,
    ),
    '',
    `Every bot interaction became a job that delivered its image: ${finals} of ${expected}. Fake RunBlob takes ${PROVIDER_DURATION_MS / 1000} s per image, so jobs wait, finish and post their results while later interactions arrive.`,
  ].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const role = process.argv.find((a) => a.startsWith('--role='))?.slice('--role='.length);
  const info = process.env.DISCORD_BENCH_FAKES ? (JSON.parse(process.env.DISCORD_BENCH_FAKES) as FakesInfo) : undefined;
  if (role === 'fakes') await fakesChild();
  else if (role === 'provider') await providerChild();
  else if (role === 'bot') await botChild(info!);
  else if (role === 'bare') await bareChild(info!);
  else {
    const profileDir = process.argv.find((a) => a.startsWith('--profile='))?.slice('--profile='.length);
    if (profileDir) await mkdir(profileDir, { recursive: true });
    const sustained = process.argv.includes('--sustained');
    const out = sustained ? await runDiscordSustainedBench(profileDir ? { profileDir } : {}) : await runDiscordBench({ acksOnly: process.argv.includes('--acks-only'), ...(profileDir && { profileDir }) });
    process.stdout.write(`${out}\n`);
  }
}
