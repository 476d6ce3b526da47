/**
 * End-to-end harness for Discord: the fake Discord (REST + gateway + CDN), the fake providers,
 * and the real bot as users run it (src/app.ts startBot: real discord.js, engine, SQLite store),
 * with time scaled down.
 * `restart()` stops the bot and starts a new one on the same store file, as an operator would.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type Config } from '../../src/config.ts';
import type { EngineTiming } from '../../src/engine/engine.ts';
import type { EngineApi } from '../../src/engine/api.ts';
import type { Logger } from '../../src/log.ts';
import { startBot } from '../../src/app.ts';
import { registerCommands } from '../../src/platforms/discord/register.ts';
import type { HttpServer } from '../../src/platforms/http/server.ts';
import { captureLogger, FAST_TIMING, sleepAbortable } from '../integration/engine-harness.ts';
import { MESSAGE_FLAG_EPHEMERAL, startFakeDiscord, type FakeDiscord, type FakeDiscordOptions, type FakeInteraction, type FakeMessage, type FakeUser, type SlashCommandInput } from '../fakes/discord/index.ts';
import { startFakeRunbase, type FakeRunbase, type FakeRunbaseOptions } from '../fakes/runbase.ts';
import { startFakeRunblob, type FakeRunblob, type FakeRunblobOptions } from '../fakes/runblob.ts';

export interface RunningBot {
  engine: EngineApi;
  http: HttpServer;
  stop(): Promise<void>;
}

export interface DiscordHarnessOptions {
  discord?: FakeDiscordOptions;
  runbase?: FakeRunbaseOptions | false;
  runblob?: FakeRunblobOptions | false;
  /** Extra environment for the bot (QUOTA_DAILY_UNITS…). */
  env?: Record<string, string>;
  timing?: EngineTiming;
  /** How Discord delivers interactions: over the gateway (default) or to the bot's HTTP endpoint (DISCORD_PUBLIC_KEY). */
  interactions?: 'gateway' | 'http';
  /** Runs on the fake Discord before the bot first starts (e.g. to inject faults). */
  beforeStart?: (discord: FakeDiscord) => void;
}

export interface DiscordHarness {
  discord: FakeDiscord;
  runbase: FakeRunbase | undefined;
  runblob: FakeRunblob | undefined;
  config: Config;
  bot: RunningBot;
  logLines: string[];
  log: Logger;
  /** Stops the bot (gateway closed, engine closed) and starts a new one on the same store file. */
  restart(): Promise<void>;
  /** Stops the bot only (the fakes keep running). */
  stopBot(): Promise<void>;
  startBot(): Promise<void>;
  /** Types /imagine with a prompt and options, like a user. */
  imagine(prompt: string, more?: Partial<SlashCommandInput> & { values?: Record<string, string | number | boolean> }): Promise<FakeInteraction>;
  /** The original response once it carries the final result (attachments or an error/result text). */
  result(interaction: FakeInteraction, timeoutMs?: number): Promise<FakeMessage>;
  /**
   * The answer only the requester sees (an ephemeral reply or follow-up with text), once every
   * public message of that interaction is gone: what a refusal must look like.
   */
  privateAnswer(interaction: FakeInteraction, timeoutMs?: number): Promise<FakeMessage>;
  close(): Promise<void>;
}

export const USERS = {
  alice: { id: '100000000000000001', username: 'alice', global_name: 'Alice' },
  bob: { id: '100000000000000002', username: 'bob', global_name: 'Bob' },
  mod: { id: '100000000000000003', username: 'mod', global_name: 'Moderator' },
} as const satisfies Record<string, FakeUser>;

const OPTION_TYPES: Record<string, number> = { prompt: 3, model: 3, ratio: 3, resolution: 3, count: 4, creativity: 10, private: 5 };

/** A message is final when the bot put a result (images/buttons) or a finished text in it. */
export function isFinal(m: FakeMessage | undefined): boolean {
  if (!m || m.history.length === 0) return false;
  // A placeholder's only component is Cancel (imagine:cancel:…); a result's are its buttons.
  const resultComponents = componentsOf(m).filter((c) => !String(c.custom_id).startsWith('imagine:cancel:'));
  return resultComponents.length > 0 || m.attachments.length > 0 || m.content.startsWith('⚠️');
}

export async function startDiscordHarness(opts: DiscordHarnessOptions = {}): Promise<DiscordHarness> {
  const dir = await mkdtemp(join(tmpdir(), 'discord-e2e-'));
  const discord = await startFakeDiscord({ ackDeadlineMs: 3_000, ...opts.discord });
  const runbase = opts.runbase === false ? undefined : await startFakeRunbase({ rateLimit: false, ...opts.runbase });
  const runblob = opts.runblob === false ? undefined : await startFakeRunblob({ ...opts.runblob });
  const config = parseConfig({
    DISCORD_TOKEN: discord.token,
    DISCORD_APPLICATION_ID: discord.applicationId,
    DISCORD_API_URL: discord.apiUrl,
    ...(runbase && { RUNBASE_API_KEY: runbase.apiKey, RUNBASE_API_URL: runbase.url }),
    ...(runblob && { RUNBLOB_API_KEY: runblob.apiKey, RUNBLOB_API_URL: runblob.url }),
    STORE_URL: `sqlite://${join(dir, 'imagine.sqlite')}`,
    DATA_DIR: join(dir, 'data'),
    FETCH_ALLOW_HOSTS: '127.0.0.1',
    PORT: '0',
    QUOTA_DAILY_UNITS: '40',
    LOG_LEVEL: 'info',
    ...(opts.interactions === 'http' && { DISCORD_PUBLIC_KEY: discord.publicKeyHex }),
    ...opts.env,
  });
  // As an operator would, once: `npm run register`.
  await registerCommands(config);
  opts.beforeStart?.(discord);
  const { log, lines } = captureLogger();
  const timing = opts.timing ?? FAST_TIMING;

  let bot: RunningBot | undefined;
  const start = async () => {
    // Exactly what users run (src/app.ts), with the engine's clocks and the providers' retry
    // waits scaled down.
    const fastRetry = { sleep: (ms: number, signal?: AbortSignal) => sleepAbortable(Math.min(ms, 30), signal), maxAttempts: 3 };
    bot = await startBot(config, { log, engineTiming: timing, providerRetry: fastRetry });
    // As an operator would after each start on a new port: save the Interactions Endpoint URL
    // (Discord checks it with a PING and with bad signatures before saving).
    if (opts.interactions === 'http') await discord.setInteractionsEndpoint(`${bot.http.localUrl}/discord/interactions`);
  };
  await start();

  const h: DiscordHarness = {
    discord,
    runbase,
    runblob,
    config,
    get bot() {
      if (!bot) throw new Error('the bot is stopped');
      return bot;
    },
    logLines: lines,
    log,
    async stopBot() {
      await bot?.stop();
      bot = undefined;
    },
    startBot: start,
    async restart() {
      await h.stopBot();
      await start();
    },
    async imagine(prompt, more = {}) {
      const { values, ...input } = more;
      const options = [
        { name: 'prompt', type: 3, value: prompt },
        ...Object.entries(values ?? {}).map(([name, value]) => ({ name, type: OPTION_TYPES[name] ?? 3, value })),
      ];
      return discord.sendCommand({ name: 'imagine', ...input, options });
    },
    result(interaction, timeoutMs = 8_000) {
      return discord.waitFor(() => {
        const m = discord.originalMessage(interaction);
        return isFinal(m) ? m : undefined;
      }, timeoutMs, `the result of interaction ${interaction.id}`);
    },
    privateAnswer(interaction, timeoutMs = 8_000) {
      return discord.waitFor(() => {
        const own = [...discord.messages.values()].filter((m) => m.interactionId === interaction.id && !m.deleted);
        const publicOnes = own.filter((m) => (m.flags & MESSAGE_FLAG_EPHEMERAL) === 0);
        const answer = own.find((m) => (m.flags & MESSAGE_FLAG_EPHEMERAL) !== 0 && m.content !== '');
        return publicOnes.length === 0 ? answer : undefined;
      }, timeoutMs, `a private answer to interaction ${interaction.id} and no public message`);
    },
    async close() {
      await bot?.stop().catch(() => {});
      await discord.close();
      await runbase?.close();
      await runblob?.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  if (opts.interactions !== 'http') await discord.waitForBot();
  return h;
}

/** Every component of a message, flattened. */
export function componentsOf(m: FakeMessage): Record<string, unknown>[] {
  return m.components.flatMap((row) => (row.components ?? []) as Record<string, unknown>[]);
}

/** The custom_id of the first component whose label matches (a button) or whose custom_id starts with `prefix`. */
export function customIdOf(m: FakeMessage, match: { label?: string; prefix?: string }): string {
  const c = componentsOf(m).find((x) => (match.label !== undefined && x.label === match.label) || (match.prefix !== undefined && String(x.custom_id).startsWith(match.prefix)));
  if (!c) throw new Error(`no component ${JSON.stringify(match)} on message: ${JSON.stringify(m.components)}`);
  return String(c.custom_id);
}

/**
 * The Discord-side invariants every scenario must keep: each interaction acknowledged within
 * 3 s (and only once), no request body Discord would refuse. `allowed` lists Discord error
 * codes a scenario provokes on purpose (e.g. 50027 after a scaled token expiry).
 */
export function expectDiscordInvariants(discord: FakeDiscord, allowed: number[] = []): void {
  const late = [...discord.interactions.values()].filter((i) => i.ackLatencyMs === undefined || i.ackLatencyMs >= 3_000);
  if (late.length > 0) throw new Error(`interactions not acknowledged within 3 s: ${late.map((i) => `${i.id} (${i.ackLatencyMs ?? 'never'})`).join(', ')}`);
  const refused = discord.refusals.filter((r) => !allowed.includes(Number(r.error?.code)));
  if (refused.length > 0) {
    throw new Error(`Discord refused requests:\n${refused.map((r) => `${r.method} ${r.path} → ${r.status} ${JSON.stringify(r.error)}`).join('\n')}`);
  }
}
