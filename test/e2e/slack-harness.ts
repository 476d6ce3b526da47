/**
 * Runs the whole bot (store, engine, providers, HTTP server, the real Bolt App) against a fake
 * Slack and fake Runbase/RunBlob on 127.0.0.1, with time scaled down. A restart stops the bot and
 * starts a new one on the same store and data directory, as a process restart would.
 */
import type { EngineTiming } from '../../src/engine/engine.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config.ts';
import { startBot } from '../../src/app.ts';
import { createLogger, type Logger } from '../../src/log.ts';
import type { EngineApi } from '../../src/engine/api.ts';
import type { HttpServer } from '../../src/platforms/http/server.ts';
import { FAKE_APP_TOKEN, startFakeSlack, type FakeSlack, type FakeSlackOptions } from '../fakes/slack/fake-slack.ts';
import { expect } from 'vitest';
import { createSlackDriver, type AckResult, type SlackDriver } from '../fakes/slack/driver.ts';
import { startFakeRunbase, type FakeRunbase, type FakeRunbaseOptions } from '../fakes/runbase.ts';
import { startFakeRunblob, type FakeRunblob, type FakeRunblobOptions } from '../fakes/runblob.ts';

/** Slack's 3 s to acknowledge a command, action or form (docs/slack.md). */
export const ACK_DEADLINE_MS = 3000;

/** `r`, after checking Slack got a 200 within its deadline. */
export function acked<T extends AckResult>(r: T): T {
  expect(r.status).toBe(200);
  expect(r.ackMs).toBeLessThan(ACK_DEADLINE_MS);
  return r;
}

export const SIGNING_SECRET = 'fake-signing-secret-0123456789abcdef';

export interface SlackHarnessOptions {
  fakeSlack?: FakeSlackOptions;
  runbase?: FakeRunbaseOptions;
  runblob?: FakeRunblobOptions;
  /** Extra environment (QUOTA_DAILY_UNITS…). */
  env?: Record<string, string>;
  /** Socket Mode (SLACK_APP_TOKEN, no signing secret) instead of HTTP mode. */
  socketMode?: boolean;
  /** Replaces parts of FAST_ENGINE_TIMING (e.g. a binding rate budget). */
  engineTiming?: EngineTiming;
}

export interface RunningBot {
  engine: EngineApi;
  http: HttpServer;
  stop(): Promise<void>;
}

export interface SlackHarness {
  fake: FakeSlack;
  runbase: FakeRunbase;
  runblob: FakeRunblob;
  driver: SlackDriver;
  bot: RunningBot;
  dataDir: string;
  /** Stops the bot and starts a fresh one on the same store (the driver follows the new port). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export function testLogger(): Logger {
  return createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent', pretty: false, destination: { write: (s: string) => process.stderr.write(s) } });
}

/** Engine time scaled down: fake providers finish in ~150 ms. */
export const FAST_ENGINE_TIMING = {
  expectedMs: () => 150,
  progressTickMs: 100,
  deliveryRetryDelaysMs: [50, 200],
  leaseTtlMs: 2_000,
  resumeGraceMs: 1_000,
  rateLimits: { runbase: { requests: 1000, windowMs: 1000 }, runblob: { requests: 1000, windowMs: 1000 } },
  scheduler: { minIntervalMs: 20, maxIntervalMs: 100, tailCapMs: 200, errorBackoffMs: 50, maxErrorBackoffMs: 200 },
};
export const FAST_SLACK_TUNING = { editIntervalMs: 200, progressEditsPerMinute: 6000, interactiveRateLimitWaitMs: 2000, deliveryRateLimitWaitMs: 3000 };

/**
 * The real composition root (src/app.ts), exactly what `npm start` runs, with the engine's and
 * the adapter's clocks scaled down (`fast`, the default) or at production timing (benches).
 */
export async function startRealBot(env: Record<string, string>, log: Logger, opts: { fast?: boolean; engineTiming?: EngineTiming } = {}): Promise<RunningBot> {
  const bot = await startBot(
    parseConfig(env),
    (opts.fast ?? true)
      ? {
          log,
          engineTiming: { ...FAST_ENGINE_TIMING, ...opts.engineTiming },
          slackTuning: FAST_SLACK_TUNING,
          providerRetry: { maxAttempts: 3, sleep: (ms: number) => new Promise((r) => setTimeout(r, Math.min(ms, 50))) },
        }
      : { log },
  );
  return { engine: bot.engine, http: bot.http, stop: () => bot.stop() };
}

export async function startSlackHarness(opts: SlackHarnessOptions = {}): Promise<SlackHarness> {
  const dataDir = await mkdtemp(join(tmpdir(), 'imagine-slack-e2e-'));
  const fake = await startFakeSlack(opts.fakeSlack);
  const runbase = await startFakeRunbase({ durationMs: 150, rateLimit: false, ...opts.runbase });
  const runblob = await startFakeRunblob({ durationMs: 150, ...opts.runblob });
  const env: Record<string, string> = {
    SLACK_BOT_TOKEN: fake.botToken,
    ...(opts.socketMode ? { SLACK_APP_TOKEN: FAKE_APP_TOKEN } : { SLACK_SIGNING_SECRET: SIGNING_SECRET }),
    SLACK_API_URL: fake.apiUrl,
    RUNBASE_API_KEY: runbase.apiKey,
    RUNBASE_API_URL: runbase.url,
    RUNBLOB_API_KEY: runblob.apiKey,
    RUNBLOB_API_URL: runblob.url,
    STORE_URL: `sqlite://${join(dataDir, 'store.sqlite')}`,
    DATA_DIR: dataDir,
    FETCH_ALLOW_HOSTS: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'silent',
    ...opts.env,
  };
  const log = testLogger();
  const botOpts = opts.engineTiming ? { engineTiming: opts.engineTiming } : {};
  let bot = await startRealBot(env, log, botOpts);
  const driverFor = (b: RunningBot) => createSlackDriver({ eventsUrl: `${b.http.localUrl}/slack/events`, signingSecret: SIGNING_SECRET, fake });
  const harness: SlackHarness = {
    fake,
    runbase,
    runblob,
    driver: driverFor(bot),
    bot,
    dataDir,
    async restart() {
      await bot.stop();
      bot = await startRealBot(env, log, botOpts);
      harness.bot = bot;
      harness.driver = driverFor(bot);
    },
    async close() {
      await bot.stop().catch(() => undefined);
      await Promise.all([fake.close(), runbase.close(), runblob.close()]);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return harness;
}
