/**
 * The composition root: builds the store, provider clients, engine, HTTP server and the chat
 * platforms from one validated Config, with one Metrics (src/metrics.ts) they all report to,
 * served at GET /metrics, and the readiness of each part at GET /readyz. main.ts calls it;
 * end-to-end tests call it too, so the tests run exactly what users run.
 */
import { ceilingsOf, ConfigError, configuredProviders, secretsOf, type Config } from './config.ts';
import { createLogger, type Logger, type LoggerOptions } from './log.ts';
import { Metrics } from './metrics.ts';
import type { EngineApi } from './engine/api.ts';
import { ResultsWorker } from './engine/results-worker.ts';
import { createEngine, type EngineSettings, type EngineTiming } from './engine/engine.ts';
import { RecentResults } from './engine/recent-results.ts';
import { CALLBACK_PATH_PREFIX } from './engine/provider-callbacks.ts';
import { REFERENCE_PATH_PREFIX } from './engine/reference-host.ts';
import { openStore } from './engine/open-store.ts';
import { STORE_PING_TIMEOUT_MS } from './engine/store.ts';
import { Quotas } from './engine/quota.ts';
import { createProviderClients, type ProviderDeps } from './providers/index.ts';
import {
  mountCallbacks,
  mountFiles,
  mountMetrics,
  mountReadiness,
  startHttpServer,
  type HttpServer,
  type ReadinessCheck,
} from './platforms/http/server.ts';
import type { SlackTuning } from './platforms/slack/context.ts';
import { cliJobsFinishedElsewhere } from './cli/finished-elsewhere.ts';

export interface BotHandle {
  engine: EngineApi;
  http: HttpServer;
  config: Config;
  log: Logger;
  /** This instance's metrics (its own registry), served at GET /metrics. */
  metrics: Metrics;
  stop(): Promise<void>;
}


export interface StartOptions {
  log?: Logger;
  /** Tests scale the engine's clocks down (deadlines, ticks, rate windows); production uses the defaults. */
  engineTiming?: EngineTiming;
  /** Tests shorten the provider clients' retry waits. */
  providerRetry?: Pick<ProviderDeps, 'maxAttempts' | 'sleep'>;
  /** Tests shorten the Slack adapter's throttles. */
  slackTuning?: Partial<SlackTuning>;
}

/**
 * The engine's settings from the config (the engine never sees the whole Config). `serves.http`:
 * this process serves the engine's HTTP routes, references and provider callbacks (the bot does,
 * the CLI does not).
 */
export function engineSettingsOf(config: Config, serves: { http: boolean }): EngineSettings {
  return {
    deadlineMs: config.JOB_DEADLINE_SECONDS * 1000,
    dataDir: config.DATA_DIR,
    publicUrl: config.PUBLIC_URL,
    servesReferences: serves.http,
    servesCallbacks: serves.http,
    fetchAllowHosts: config.FETCH_ALLOW_HOSTS,
    defaultModel: config.DEFAULT_MODEL,
  };
}

/** The bot's logger for `config`: its LOG_LEVEL, its secrets scrubbed; stdout unless `destination` is given. */
export const botLogger = (config: Config, destination?: LoggerOptions['destination']): Logger =>
  createLogger({ level: config.LOG_LEVEL, secrets: secretsOf(config), ...(destination && { destination }) });

export async function startBot(config: Config, opts: StartOptions = {}): Promise<BotHandle> {
  const log = opts.log ?? botLogger(config);
  if (configuredProviders(config).size === 0) {
    throw new ConfigError(['RUNBASE_API_KEY / RUNBLOB_API_KEY: set at least one image provider key']);
  }
  const store = await openStore(config.STORE_URL, { log });
  const metrics = new Metrics();
  const stops: Array<() => Promise<void>> = [
    () => store.close(),
    async () => metrics.close(),
  ];
  let http: HttpServer | undefined;
  let handOver: (() => Promise<void>) | undefined;
  const stop = async () => {
    // First tell load balancers (health checks) to send nothing new here.
    http?.drain();
    // Then hand the running jobs over at once (docs/architecture.md "Scaling out"): live peers
    // take them within a heartbeat, while the platforms below still take commands (queued for
    // a peer, or refused with BOT_RESTARTING when there is none) until they stop.
    if (handOver) {
      try {
        await handOver();
      } catch (err) {
        log.warn({ err }, 'error while handing jobs over');
      }
    }
    for (const s of stops.reverse()) {
      try {
        await s();
      } catch (err) {
        log.warn({ err }, 'error while stopping');
      }
    }
  };
  try {
    http = await startHttpServer(config.PORT, log);
    const server = http;
    stops.push(() => server.close());
    mountMetrics(http, metrics, config.METRICS_TOKEN);
    // Mounted first: while a platform starts (the Discord gateway before READY), /readyz says so.
    const readiness = new Map<string, ReadinessCheck>([['store', () => store.ping(STORE_PING_TIMEOUT_MS).then(() => true)]]);
    mountReadiness(http, readiness);
    const quotas = new Quotas(store, {
      dailyUnits: config.QUOTA_DAILY_UNITS,
      costs: { '1K': config.QUOTA_COST_1K, '2K': config.QUOTA_COST_2K, '4K': config.QUOTA_COST_4K },
      exemptUsers: config.QUOTA_EXEMPT_USERS,
      spendCapUsd: config.SPEND_CAP_DAILY_USD,
    });
    const providers = createProviderClients(config, { log, metrics, ...opts.providerRetry });
    // A result's bytes go from the engine's download to Discord's deliverer without a read of its file.
    const recentResults = new RecentResults();
    // Results are downloaded, and sent to Slack's upload URLs, off the event loop that answers the
    // platforms (stopped after the engine and the platforms).
    const results = new ResultsWorker({ log });
    results.start();
    stops.push(() => results.close());
    const engine = createEngine({
      ...engineSettingsOf(config, { http: true }),
      store,
      quotas,
      providers,
      log,
      metrics,
      recentResults,
      downloadResult: (url, destPath, o) => results.download(url, destPath, o),
      ceilings: ceilingsOf(config),
      ...(opts.engineTiming ? { timing: opts.engineTiming } : {}),
    });
    stops.push(() => engine.close());
    handOver = () => engine.close();
    // The engine's routes: provider completion callbacks, and references published for URL-only providers.
    mountCallbacks(http, CALLBACK_PATH_PREFIX, engine.providerCallback, log);
    mountFiles(http, REFERENCE_PATH_PREFIX, engine.referenceFile);

    // Platforms register their deliverers before resume(), so resumed jobs reach their users.
    if (config.DISCORD_TOKEN) {
      const { startDiscord } = await import('./platforms/discord/index.ts');
      readiness.set('discord', () => false); // starting
      const discord = await startDiscord({ config, engine, log: log.child({ platform: 'discord' }), http, metrics, recentResults });
      readiness.set('discord', () => discord.ready());
      stops.push(() => discord.stop());
    }
    if (config.SLACK_BOT_TOKEN) {
      const { startSlack } = await import('./platforms/slack/index.ts');
      readiness.set('slack', () => false); // starting
      const slack = await startSlack({
        config,
        engine,
        log: log.child({ platform: 'slack' }),
        http,
        metrics,
        // The thread that downloaded a result reads and sends its file: no bytes kept for Slack.
        uploadFile: (upload) => results.upload(upload),
        ...(opts.slackTuning ? { tuning: opts.slackTuning } : {}),
      });
      readiness.set('slack', () => slack.ready());
      stops.push(() => slack.stop());
    }
    // `npm run imagine` jobs interrupted mid-way are finished here (same store) and logged.
    engine.setDeliverer('cli', cliJobsFinishedElsewhere(log.child({ platform: 'cli' })));
    if (!config.DISCORD_TOKEN && !config.SLACK_BOT_TOKEN) {
      log.warn('neither DISCORD_TOKEN nor SLACK_BOT_TOKEN is set: only the HTTP server and the CLI are useful');
    }
    const resumed = await engine.resume();
    log.info({ port: http.port, models: engine.models.map((m) => m.key), resumed }, 'imagine bot started');
    return { engine, http, config, log, metrics, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
