/**
 * Builds a real engine (real store, quotas, provider clients, scheduler) against the fake
 * providers, with time scaled down, for the engine integration tests and the kill -9 worker.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { ceilingsOf, parseConfig, type Config } from '../../src/config.ts';
import { createEngine, type Engine, type EngineTiming } from '../../src/engine/engine.ts';
import type { Deliverer, JobRecord, ProgressEvent } from '../../src/engine/job.ts';
import { openStore } from '../../src/engine/open-store.ts';
import { Quotas } from '../../src/engine/quota.ts';
import type { Store } from '../../src/engine/store.ts';
import type { Logger } from '../../src/log.ts';
import { createProviderClients } from '../../src/providers/index.ts';
import { mountCallbacks, mountFiles, type HttpServer } from '../../src/platforms/http/server.ts';
import { engineSettingsOf } from '../../src/app.ts';
import { CALLBACK_PATH_PREFIX } from '../../src/engine/provider-callbacks.ts';
import { REFERENCE_PATH_PREFIX } from '../../src/engine/reference-host.ts';
import { sleep } from '../../src/util/sleep.ts';

/**
 * Runbase's 20 requests / 10 s, scaled 10× like everything else: fakes in these tests enforce
 * it (`rateLimit: TEST_RATE_LIMIT`) and the engine budgets for it.
 */
export const TEST_RATE_LIMIT = { requests: 20, windowMs: 1_000 };

/** Fast but realistic: the whole suite's fakes finish tasks in 50–300 ms. */
export const FAST_TIMING: EngineTiming = {
  rateLimits: { runbase: { ...TEST_RATE_LIMIT, windowPaddingMs: 25 } },
  deadlineMs: 5_000,
  progressTickMs: 100,
  deliveryRetryDelaysMs: [20, 40],
  leaseTtlMs: 3_000,
  resumeGraceMs: 2_000,
  createRateLimitedBackoffMs: 100,
  expectedMs: () => 150,
  // The fakes' task durations are ~100 ms: poll in tens of ms, not seconds.
  scheduler: { minIntervalMs: 20, maxIntervalMs: 60, tailCapMs: 100, errorBackoffMs: 30, maxErrorBackoffMs: 200, firstPollFraction: 0.3 },
};

/** Log lines captured for assertions (and shown with DEBUG_LOGS=1). */
export function captureLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      const text = chunk.toString();
      lines.push(text);
      if (process.env.DEBUG_LOGS) process.stderr.write(text);
      cb();
    },
  });
  return { log: pino({ level: process.env.DEBUG_LOGS ? 'debug' : 'info' }, sink), lines };
}

export interface RecordingDeliverer extends Deliverer {
  delivered: JobRecord[];
  events: ProgressEvent[];
  /** Throw on the first n deliver calls. */
  failFirst: number;
  /** Jobs the engine gave up delivering (Deliverer.undeliverable), with the last error. */
  gaveUp: { job: JobRecord; err: unknown }[];
}

export function recordingDeliverer(): RecordingDeliverer {
  const d: RecordingDeliverer = {
    delivered: [],
    events: [],
    failFirst: 0,
    gaveUp: [],
    async undeliverable(job, err) {
      d.gaveUp.push({ job, err });
    },
    progress(_job, event) {
      d.events.push(event);
    },
    async deliver(job) {
      if (d.failFirst > 0) {
        d.failFirst--;
        throw new Error('chat platform unavailable');
      }
      d.delivered.push(job);
    },
  };
  return d;
}

/** Environment variables as the bot reads them (config.ts names). */
export type HarnessEnv = Record<string, string | undefined>;

export interface EngineHarness {
  engine: Engine;
  store: Store;
  quotas: Quotas;
  config: Config;
  dir: string;
  log: Logger;
  logLines: string[];
  deliverer: RecordingDeliverer;
  /** A second engine on the same store (a restart). */
  restart(opts?: { timing?: EngineTiming; processId?: string }): Promise<Engine>;
  close(): Promise<void>;
}

export async function tempDir(prefix = 'engine-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function startEngineHarness(
  env: HarnessEnv,
  opts: { timing?: EngineTiming; dir?: string; storeUrl?: string; keyPrefix?: string; http?: HttpServer; processId?: string } = {},
): Promise<EngineHarness> {
  const dir = opts.dir ?? (await tempDir());
  const config = parseConfig({
    DATA_DIR: join(dir, 'data'),
    STORE_URL: opts.storeUrl ?? `sqlite://${join(dir, 'imagine.sqlite')}`,
    FETCH_ALLOW_HOSTS: '127.0.0.1',
    QUOTA_DAILY_UNITS: '20',
    LOG_LEVEL: 'silent',
    ...env,
  });
  const { log, lines } = captureLogger();
  const store = await openStore(config.STORE_URL, { log, keyPrefix: opts.keyPrefix ?? `t${Date.now()}${Math.random().toString(36).slice(2, 8)}:` });
  const quotas = new Quotas(store, {
    dailyUnits: config.QUOTA_DAILY_UNITS,
    costs: { '1K': config.QUOTA_COST_1K, '2K': config.QUOTA_COST_2K, '4K': config.QUOTA_COST_4K },
    exemptUsers: config.QUOTA_EXEMPT_USERS,
    spendCapUsd: config.SPEND_CAP_DAILY_USD,
  });
  const fastRetry = { sleep: (ms: number, signal?: AbortSignal) => sleep(Math.min(ms, 30), signal), maxAttempts: 3 };
  const build = (o: { timing?: EngineTiming; processId?: string } = {}) =>
    createEngine({
      ...engineSettingsOf(config, { http: opts.http !== undefined }),
      store,
      quotas,
      providers: createProviderClients(config, { log, ...fastRetry, timeoutMs: 5_000 }),
      log,
      ceilings: ceilingsOf(config),
      ...(o.processId ?? opts.processId ? { processId: o.processId ?? opts.processId } : {}),
      timing: o.timing ?? opts.timing ?? FAST_TIMING,
    });
  const deliverer = recordingDeliverer();
  const engines: Engine[] = [];
  const engine = build();
  engine.setDeliverer('discord', deliverer);
  engines.push(engine);
  // The routes src/app.ts mounts, served by the latest engine (a restart replaces the process).
  const latest = () => engines.at(-1) ?? engine;
  if (opts.http) {
    mountCallbacks(opts.http, CALLBACK_PATH_PREFIX, (provider, token) => latest().providerCallback(provider, token), log);
    mountFiles(opts.http, REFERENCE_PATH_PREFIX, (token) => latest().referenceFile(token));
  }
  return {
    engine,
    store,
    quotas,
    config,
    dir,
    log,
    logLines: lines,
    deliverer,
    async restart(o = {}) {
      const next = build(o);
      engines.push(next);
      return next;
    },
    async close() {
      for (const e of engines) await e.close();
      await store.close();
      if (!opts.dir) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The project's sleep (src/util/sleep.ts), under the name test/e2e/discord-harness.ts imports. */
export const sleepAbortable = sleep;

export const discordUser = (userId = 'u1') => ({ platform: 'discord' as const, userId });
