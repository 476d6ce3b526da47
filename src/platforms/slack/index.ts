/**
 * The Slack adapter: a Bolt App whose listeners (listeners/) translate commands, modals,
 * shortcuts and clicks into engine requests, and whose deliverer (deliverer.ts) renders jobs back
 * into Slack messages.
 *
 * Transport (docs/slack.md "Transport and security"):
 * - HTTP mode (SLACK_SIGNING_SECRET): Bolt's HTTPReceiver verifies signatures and timestamps
 *   (older than 5 min → 401) and is mounted on the bot's own HTTP server at POST /slack/events;
 *   Bolt never opens a port of its own.
 * - Socket Mode (SLACK_APP_TOKEN): a WebSocket from apps.connections.open; no public endpoint.
 * The Web API base comes from SLACK_API_URL; 429s never make an interactive path sleep.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { App, HTTPModuleFunctions, HTTPReceiver, LogLevel, SocketModeReceiver, defaultBodyLimit, type BufferedIncomingMessage, type Logger as BoltLogger } from '@slack/bolt';
import type { Config } from '../../config.ts';
import type { EngineApi } from '../../engine/api.ts';
import type { Logger } from '../../log.ts';
import type { Metrics } from '../../metrics.ts';
import { readBody, type HttpServer } from '../http/server.ts';
import { webApiFetch } from './web-fetch.ts';
import { createSlackWebCalls, WEB_API_RETRY, WEB_API_TIMEOUT_MS } from './web-api.ts';
import type { RecentResults } from '../../engine/recent-results.ts';
import type { FileUploader } from '../../util/file-upload.ts';
import { concurrencyLimit } from '../../util/limit.ts';
import { AFTER_ACK_CONCURRENCY, DEFAULT_TUNING, slackApiUrl, type SlackContext, type SlackTuning } from './context.ts';
import { SlackDeliverer } from './deliverer.ts';
import { slackRefsDir } from './files.ts';
import { registerListeners } from './listeners/index.ts';
import { answerUnacknowledged } from './listeners/unknown.ts';
import { SLACK_EVENTS_PATH } from './manifest.ts';
import { AckFirst } from '../ack-first.ts';

export interface SlackDeps {
  config: Config;
  engine: EngineApi;
  log: Logger;
  http: HttpServer;
  /** Time knobs for tests and benches; production uses the defaults. */
  tuning?: Partial<SlackTuning>;
  /** The app's metrics: acknowledgement latency, refusals. */
  metrics?: Metrics;
  /** Results' bytes the engine just downloaded, sent here without reading their files back (SlackContext.recentResults). */
  recentResults?: RecentResults;
  /** Sends result files to Slack's upload URLs off the event loop (SlackContext.uploadFile). */
  uploadFile?: FileUploader;
}

/** How the bot's WebClient is built (Bolt builds it from these; the webapi bench too). */
export function webClientOptions(config: Pick<Config, 'SLACK_API_URL'>) {
  return {
    slackApiUrl: slackApiUrl(config),
    rejectRateLimitedCalls: true,
    retryConfig: WEB_API_RETRY,
    timeout: WEB_API_TIMEOUT_MS,
    fetch: webApiFetch,
  };
}

export interface SlackAdapter {
  /**
   * For GET /readyz: auth.test succeeded (the start fails otherwise), and the events endpoint is
   * mounted (HTTP mode) or the Socket Mode WebSocket is connected.
   */
  ready(): boolean;
  stop(): Promise<void>;
}

/** Downloaded reference images are kept as long as job records (buttons can reuse them for Rerun). */
const REFERENCE_RETENTION_MS = 60 * 24 * 60 * 60 * 1000;
const STOP_WAIT_MS = 5_000;

/** Bolt and the WebClient log through pino (object-first, secrets scrubbed by the root logger). */
export function boltLogger(log: Logger): BoltLogger {
  const text = (msg: unknown[]) => msg.map((m) => (typeof m === 'string' ? m : m instanceof Error ? m.message : JSON.stringify(m))).join(' ');
  const level = (): LogLevel =>
    log.isLevelEnabled('debug') ? LogLevel.DEBUG : log.isLevelEnabled('info') ? LogLevel.INFO : log.isLevelEnabled('warn') ? LogLevel.WARN : LogLevel.ERROR;
  return {
    debug: (...msg) => log.debug(text(msg)),
    info: (...msg) => log.info(text(msg)),
    warn: (...msg) => log.warn(text(msg)),
    error: (...msg) => log.error(text(msg)),
    // The level is pino's (LOG_LEVEL); Bolt may not change it.
    setLevel: () => undefined,
    getLevel: level,
    setName: () => undefined,
  };
}

/** Removes downloaded reference images older than the job records that could use them. */
async function pruneOldReferences(dir: string, now: number, log: Logger): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return;
  }
  for (const name of entries) {
    const path = join(dir, name);
    try {
      if (now - (await stat(path)).mtimeMs > REFERENCE_RETENTION_MS) await rm(path, { recursive: true, force: true });
    } catch (err) {
      log.warn({ err: String(err), path }, 'could not prune an old reference download');
    }
  }
}

export async function startSlack(deps: SlackDeps): Promise<SlackAdapter> {
  const { config, engine, http, metrics } = deps;
  // The composition root already gives a `platform: 'slack'` child logger.
  const { log } = deps;
  const token = config.SLACK_BOT_TOKEN;
  if (!token) throw new Error('startSlack needs SLACK_BOT_TOKEN');
  const socketMode = !!config.SLACK_APP_TOKEN;
  if (!socketMode && !config.SLACK_SIGNING_SECRET) throw new Error('Slack HTTP mode needs SLACK_SIGNING_SECRET (or set SLACK_APP_TOKEN for Socket Mode)');

  const logger = boltLogger(log.child({ component: 'bolt' }));
  const clientOptions = webClientOptions(config);
  const receiver = socketMode
    ? new SocketModeReceiver({ appToken: config.SLACK_APP_TOKEN!, logger, installerOptions: { clientOptions } })
    : new HTTPReceiver({
        signingSecret: config.SLACK_SIGNING_SECRET!,
        endpoints: [SLACK_EVENTS_PATH],
        logger,
        // ack() answers the HTTP request at once; the work continues after it.
        processBeforeResponse: false,
      });
  const app = new App({
    token,
    receiver,
    logger,
    clientOptions,
    // init() below runs auth.test once: a bad token fails the start, not the first command.
    deferInitialization: true,
    convoStore: false,
  });
  await app.init();
  // Inside observeAcks' wrapper, so its answers are timed like any ack.
  answerUnacknowledged(app, log);
  if (metrics) observeAcks(app, metrics);

  const tasks = new Set<Promise<unknown>>();
  const ackFirst = new AckFirst();
  const afterAckSlot = concurrencyLimit(AFTER_ACK_CONCURRENCY);
  const ctx: SlackContext = {
    config,
    engine,
    log,
    client: app.client,
    web: createSlackWebCalls({ apiUrl: clientOptions.slackApiUrl, token, log }),
    botToken: token,
    tuning: { ...DEFAULT_TUNING, ...deps.tuning },
    track(task, what) {
      const guarded = task.catch((err: unknown) => log.error({ err, what }, 'slack background task failed'));
      tasks.add(guarded);
      void guarded.finally(() => tasks.delete(guarded));
    },
    ackFirst,
    metrics,
    recentResults: deps.recentResults,
    uploadFile: deps.uploadFile,
    afterAck(what, work, opts = {}) {
      const run = async () => {
        if (opts.urgent) {
          await new Promise((r) => setImmediate(r));
          return work();
        }
        await ackFirst.turn();
        await afterAckSlot(work);
      };
      ctx.track(run(), what);
    },
  };
  const deliverer = new SlackDeliverer(ctx);
  registerListeners(app, { ctx, jobs: deliverer });
  app.error(async (err) => {
    log.error({ err: err.message, code: (err as { code?: string }).code }, 'bolt listener error');
  });
  engine.setDeliverer('slack', deliverer);
  ctx.track(pruneOldReferences(slackRefsDir(config), ctx.tuning.now(), log), 'prune references');

  let stopped = false;
  let connected = false;
  if (socketMode) {
    // The client reconnects by itself; readiness follows its state (@slack/socket-mode's events).
    const socket = (receiver as SocketModeReceiver).client;
    guardSocketMessages(socket, log);
    socket.on('connected', () => (connected = true));
    for (const down of ['reconnecting', 'disconnecting', 'disconnected']) socket.on(down, () => (connected = false));
    await app.start();
    connected = true;
    log.info('slack connected (Socket Mode)');
  } else {
    const listener = (receiver as HTTPReceiver).requestListener;
    const signingSecret = config.SLACK_SIGNING_SECRET!;
    http.mount('POST', SLACK_EVENTS_PATH, async (req, res) => {
      if (stopped) {
        res.writeHead(503).end();
        return;
      }
      // In flight from arrival until the answer (ack, 401, 404…) is sent or the client gives up.
      res.once('close', ackFirst.begin());
      if (stampedInTheFuture(req.headers['x-slack-request-timestamp'], Date.now())) {
        log.warn('slack request stamped more than 5 minutes in the future; refused');
        res.writeHead(401).end();
        return;
      }
      // Bolt parses the form only for exactly "application/x-www-form-urlencoded"; with a
      // parameter ("; charset=utf-8", as many HTTP clients send) it would answer 400. The
      // signature covers the body only, so the media type can be normalised.
      const type = req.headers['content-type'];
      if (type) req.headers['content-type'] = type.split(';')[0]!.trim().toLowerCase();
      // The body is read here, with Bolt's own limit, and handed to Bolt already read (its
      // receiver then uses req.rawBody). Bolt 5.x reads `body.ssl_check` of the parsed body
      // outside any catch: a signed body that parses to null (JSON `null`, `payload=null`) would
      // be an unhandled rejection, ending the process. Slack only sends objects.
      let rawBody: Buffer;
      try {
        rawBody = await readBody(req, defaultBodyLimit);
      } catch {
        if (!res.headersSent) res.writeHead(413).end();
        return;
      }
      const buffered = Object.assign(req, { rawBody });
      if (!parsesToObject(buffered)) {
        const signed = await HTTPModuleFunctions.parseAndVerifyHTTPRequest({ signingSecret }, buffered, res).then(
          () => true,
          () => false,
        );
        log.warn({ signed }, 'slack request whose body is not an object; refused');
        res.writeHead(signed ? 400 : 401).end();
        return;
      }
      try {
        listener(req, res);
      } catch {
        // HTTPReceiver throws for paths it does not own (e.g. /slack/events/x).
        if (!res.headersSent) res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      }
    });
    connected = true;
    log.info({ path: SLACK_EVENTS_PATH }, 'slack events endpoint mounted (HTTP mode)');
  }

  return {
    ready: () => connected && !stopped,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (socketMode) await app.stop().catch((err: unknown) => log.warn({ err: String(err) }, 'socket mode stop failed'));
      await deliverer.close();
      const pending = Promise.allSettled([...tasks]);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([pending, new Promise<void>((r) => (timer = setTimeout(r, STOP_WAIT_MS)))]);
      clearTimeout(timer);
    },
  };
}

/**
 * One malformed Socket Mode message costs that message only. @slack/socket-mode (2.x) handles
 * each WebSocket message in an async listener that reads the envelope without checks (JSON
 * `null`, an `events_api` envelope without `payload.event`…): a throw there is an unhandled
 * rejection, which ends the process. Its listeners are re-registered behind a guard that logs
 * and drops the message; Slack redelivers an envelope it got no ack for.
 */
function guardSocketMessages(socket: SocketModeReceiver['client'], log: Logger): void {
  const listeners = socket.listeners('ws_message') as Array<(data: unknown, isBinary: unknown) => unknown>;
  socket.removeAllListeners('ws_message');
  const dropped = (err: unknown) => log.warn({ err: err instanceof Error ? err.message : String(err) }, 'slack socket mode message that could not be handled; dropped');
  for (const listener of listeners) {
    socket.on('ws_message', (data: unknown, isBinary: unknown) => {
      try {
        void Promise.resolve(listener(data, isBinary)).catch(dropped);
      } catch (err) {
        dropped(err);
      }
    });
  }
}

/** Whether Bolt's own parse of the body gives an object (or fails, which Bolt answers with 400 itself). */
function parsesToObject(req: BufferedIncomingMessage): boolean {
  try {
    const body: unknown = HTTPModuleFunctions.parseHTTPRequestBody(req);
    return typeof body === 'object' && body !== null;
  } catch {
    return true;
  }
}

/** Slack's tolerance for a request's timestamp, either way. */
export const SLACK_TIMESTAMP_TOLERANCE_S = 5 * 60;

/**
 * Slack's verification refuses a request whose X-Slack-Request-Timestamp is more than five
 * minutes away from the local time in either direction ("absolute value",
 * https://docs.slack.dev/authentication/verifying-requests-from-slack); Bolt's HTTPReceiver
 * (5.x, verifySlackRequest) only refuses the past, so the future is refused here, before Bolt.
 * A missing or unreadable header is left to Bolt (401 as well).
 */
export function stampedInTheFuture(header: string | string[] | undefined, nowMs: number): boolean {
  const ts = typeof header === 'string' ? Number(header) : Number.NaN;
  return Number.isFinite(ts) && ts - Math.floor(nowMs / 1000) > SLACK_TIMESTAMP_TOLERANCE_S;
}

/**
 * imagine_ack_latency_seconds{platform="slack"}: from Bolt receiving an event (HTTP: the request
 * read and its signature checked; Socket Mode: the envelope) to its ack() sent, for both
 * transports. Bolt's receivers hand every event to App#processEvent, wrapped here.
 */
function observeAcks(app: App, metrics: Metrics): void {
  const latency = metrics.ackLatency.labels({ platform: 'slack' });
  const processEvent = app.processEvent.bind(app);
  app.processEvent = (event) => {
    const received = performance.now();
    return processEvent({
      ...event,
      ack: async (response) => {
        await event.ack(response);
        latency.observe((performance.now() - received) / 1000);
      },
    });
  };
}
