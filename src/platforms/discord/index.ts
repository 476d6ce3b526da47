/**
 * The Discord adapter: a discord.js client, the interaction dispatcher and the engine's
 * deliverer. Started by the composition root (src/app.ts) when DISCORD_TOKEN is set. Commands
 * are registered by `npm run register` (register.ts), never here.
 *
 * Interactions arrive one of two ways (Discord uses one or the other, never both):
 * - the gateway: discord.js logs in with the Guilds and GuildMessages intents (no privileged
 *   intents); GuildMessages brings the replies that mention the bot (reply to refine, replies.ts);
 * - the HTTP interactions endpoint, once the application's Interactions Endpoint URL is set:
 *   Discord POSTs them to /discord/interactions on the bot's HTTP server (http-interactions.ts),
 *   which several processes behind a load balancer can share. Mounted when DISCORD_PUBLIC_KEY is
 *   set; while the application has no Interactions Endpoint URL yet, a gateway client is
 *   connected too (not fatal if it fails), so the bot is not deaf while an operator switches.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { Client, DiscordAPIError, Events, GatewayCloseCodes, GatewayIntentBits, Options, Routes, Status, type ClientOptions } from 'discord.js';
import type { Config } from '../../config.ts';
import type { EngineApi } from '../../engine/api.ts';
import type { Logger } from '../../log.ts';
import type { Metrics } from '../../metrics.ts';
import type { RecentResults } from '../../engine/recent-results.ts';
import type { HttpServer } from '../http/server.ts';
import { AckFirst } from '../ack-first.ts';
import { DiscordDelivery, ORIGINALS_PATH_PREFIX } from './delivery.ts';
import { InteractionHandler } from './interactions.ts';
import { ReplyRefiner } from './replies.ts';
import { DiscordMessages } from './messages.ts';
import { discordRestOptions, sendCallbacksDirectly } from './rest-request.ts';
import { DISCORD_API_DEFAULT } from './command-json.ts';
import { DISCORD_INTERACTIONS_PATH, HttpAnswers, discordPublicKey, mountInteractionsEndpoint } from './http-interactions.ts';

export interface DiscordDeps {
  config: Config;
  engine: EngineApi;
  log: Logger;
  http: HttpServer;
  /** Tests shorten the wait for the gateway's READY (LOGIN_TIMEOUT_MS). */
  loginTimeoutMs?: number;
  /** The app's metrics: acknowledgement latency, refusals. */
  metrics?: Metrics;
  /** Results' bytes the engine just downloaded, sent without reading their files back (recent-results.ts). */
  recentResults?: RecentResults;
}

export interface DiscordAdapter {
  /** For GET /readyz: the gateway is READY (every shard), or the HTTP interactions endpoint is mounted. */
  ready(): boolean;
  stop(): Promise<void>;
}

/** How long to wait for the gateway's READY before giving up at start. */
export const LOGIN_TIMEOUT_MS = 30_000;
/** stop() waits this long for a gateway login still under way (HTTP mode) before destroying it. */
const STOP_LOGIN_WAIT_MS = 5_000;

export async function startDiscord(deps: DiscordDeps): Promise<DiscordAdapter> {
  const { config, engine, http, metrics } = deps;
  const loginTimeoutMs = deps.loginTimeoutMs ?? LOGIN_TIMEOUT_MS;
  const log = deps.log.child({ platform: 'discord' });
  if (!config.DISCORD_TOKEN) throw new Error('startDiscord needs DISCORD_TOKEN');

  const newClient = () => {
    const client = new Client({
      // GuildMessages: replies mentioning the bot (replies.ts); not privileged, and a message that
      // mentions the bot carries its content without the Message Content intent.
      intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildMessages],
      ...shardOptions(config.DISCORD_SHARDS),
      rest: discordRestOptions(config.DISCORD_API_URL ?? DISCORD_API_DEFAULT),
      // The bot never reads message history: keep no messages in memory.
      makeCache: Options.cacheWithLimits({ ...Options.DefaultMakeCacheSettings, MessageManager: 0 }),
    });
    sendCallbacksDirectly(client.rest);
    return client;
  };
  // The client whose REST every answer, edit and upload goes through (and, in HTTP mode, that
  // builds the interactions from HTTP requests without ever logging in).
  const client = newClient();
  // HTTP interactions: first responses become HTTP answers, which webhook calls must not overtake.
  const answers = config.DISCORD_PUBLIC_KEY ? new HttpAnswers(client.rest) : undefined;
  const messages = new DiscordMessages(client.rest, { httpAnswers: answers !== undefined });
  for (const rest of [client.rest, messages.interactionRest])
    rest.on('rateLimited', (info) => log.debug({ route: info.route, retryAfterMs: info.retryAfter, global: info.global }, 'discord rate limited; request queued'));
  /** The interaction-token REST client's sweepers (discord.js stops the client's own in destroy()). */
  const stopInteractionRest = () => {
    messages.interactionRest.clearHashSweeper();
    messages.interactionRest.clearHandlerSweeper();
  };
  const ackLatency = metrics?.ackLatency.labels({ platform: 'discord' });
  const ackFirst = new AckFirst(undefined, undefined, ackLatency ? { onAck: (s) => ackLatency.observe(s) } : {});
  const delivery = new DiscordDelivery({ engine, log, messages, publicUrl: config.PUBLIC_URL, ackFirst, recentResults: deps.recentResults });
  const handler = new InteractionHandler({
    engine,
    log,
    messages,
    ackFirst,
    ...(metrics && { metrics }),
    show: (job, location) => delivery.showAt(job, location),
    tellAfterPlaceholder: (jobId, location, content) => delivery.tellAfterPlaceholder(jobId, location, content),
  });
  const replies = new ReplyRefiner({ engine, log, messages, ...(metrics && { metrics }) });

  engine.setDeliverer('discord', delivery);
  mountOriginals(http, engine, log);

  /** Logs `gw` in and resolves at READY; rejects on failure or after loginTimeoutMs (never unhandled). */
  const connectGateway = async (gw: Client) => {
    guardGatewayPackets(gw, log);
    gw.on(Events.InteractionCreate, (interaction) => void handler.handle(interaction));
    gw.on(Events.MessageCreate, (message) => void replies.handle(message));
    gw.on(Events.Error, (err) => log.error({ err }, 'discord client error'));
    gw.on(Events.Warn, (message) => log.warn({ message }, 'discord client warning'));
    gw.on(Events.ShardDisconnect, (event, shardId) => log.warn({ code: event.code, shardId }, 'discord gateway disconnected'));
    let timer: NodeJS.Timeout | undefined;
    const ready = new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`Discord gateway not ready after ${loginTimeoutMs} ms`)), loginTimeoutMs);
      gw.once(Events.ClientReady, (c) => {
        log.info({ user: c.user.tag, guilds: c.guilds.cache.size, shards: c.ws.shards.size }, 'discord ready');
        resolve();
      });
      // A shard Discord closed for good before READY (4010 invalid shard, 4011 sharding required…):
      // discord.js rejects the login with a bare "Sharding is required"; say which shard, which code, which setting.
      gw.once(Events.ShardDisconnect, (event, shardId) => {
        const name = (GatewayCloseCodes as Record<number, string | undefined>)[event.code] ?? 'closed';
        const sharding = event.code === GatewayCloseCodes.InvalidShard || event.code === GatewayCloseCodes.ShardingRequired;
        const hint = sharding ? ' (DISCORD_SHARDS: docs/discord.md "Sharding")' : '';
        reject(new Error(`Discord closed the gateway of shard ${shardId} before READY: ${event.code} ${name}${hint}`));
      });
    });
    try {
      // Both awaited together: a login that never settles (a gateway that keeps refusing) ends
      // with the timeout's rejection, handled here.
      await Promise.all([gw.login(config.DISCORD_TOKEN), ready]);
    } finally {
      clearTimeout(timer);
    }
  };

  if (answers && config.DISCORD_PUBLIC_KEY) {
    const publicKey = discordPublicKey(config.DISCORD_PUBLIC_KEY);
    client.rest.setToken(config.DISCORD_TOKEN);
    let app: { interactions_endpoint_url?: string | null } = {};
    try {
      app = (await client.rest.get(Routes.currentApplication())) as typeof app;
    } catch (err) {
      // A wrong token fails the start, not the first command; anything else (Discord briefly
      // unreachable) only costs knowing whether the endpoint URL is saved: assume it is not.
      if (err instanceof DiscordAPIError && err.status === 401) {
        await client.destroy().catch(() => {});
        stopInteractionRest();
        throw new Error(`Discord refused DISCORD_TOKEN: ${err.message}`, { cause: err });
      }
      log.warn({ err: String(err) }, 'could not read the Discord application; connecting the gateway as well');
    }
    const stopEndpoint = mountInteractionsEndpoint({ http, client, publicKey, answers, ackFirst, log, handle: (i) => handler.handle(i) });
    const url = `${config.PUBLIC_URL ?? 'https://<your host>'}${DISCORD_INTERACTIONS_PATH}`;
    log.info({ path: DISCORD_INTERACTIONS_PATH, endpointUrlSet: !!app.interactions_endpoint_url }, `discord interactions endpoint mounted (HTTP mode): the application's Interactions Endpoint URL must be ${url}`);
    // Until the Interactions Endpoint URL is saved, Discord still sends interactions over the
    // gateway: then connect it too (its own client, so its failures never touch the REST client
    // above), not awaited and not fatal, so the bot is not deaf while an operator switches. With
    // the URL saved (several processes behind a load balancer), no gateway session at all.
    let gateway: { client: Client; connecting: Promise<void> } | undefined;
    if (!app.interactions_endpoint_url) {
      const gw = newClient();
      const connecting = connectGateway(gw).catch((err: unknown) => {
        log.warn({ err: String(err) }, 'discord gateway not connected: interactions come only to the HTTP endpoint');
      });
      gateway = { client: gw, connecting };
    }
    return {
      // Interactions come to the endpoint, mounted above.
      ready: () => true,
      async stop() {
        stopEndpoint();
        delivery.throttle.stop();
        if (gateway) {
          // A login still under way would open the session after destroy(): let it settle first (bounded).
          await Promise.race([gateway.connecting, new Promise((r) => setTimeout(r, STOP_LOGIN_WAIT_MS).unref())]);
          await gateway.client.destroy();
        }
        try {
          await client.destroy();
        } finally {
          stopInteractionRest();
        }
      },
    };
  }

  try {
    await connectGateway(client);
  } catch (err) {
    await client.destroy().catch(() => {});
    stopInteractionRest();
    throw err;
  }

  return {
    ready: () => gatewayReady(client),
    async stop() {
      delivery.throttle.stop();
      try {
        await client.destroy();
      } finally {
        stopInteractionRest();
      }
    },
  };
}

/** Every shard of the gateway session is READY (not reconnecting, resuming or disconnected). */
function gatewayReady(client: Client): boolean {
  return client.isReady() && client.ws.shards.size > 0 && client.ws.shards.every((shard) => shard.status === Status.Ready);
}

/**
 * DISCORD_SHARDS as discord.js takes it: `auto` asks GET /gateway/bot for Discord's recommended
 * count; N runs shards 0..N-1 of N in this process (a bare number would mean the one shard of that id).
 */
function shardOptions(shards: Config['DISCORD_SHARDS']): Pick<ClientOptions, 'shards' | 'shardCount'> {
  return shards === 'auto' ? { shards: 'auto' } : { shards: Array.from({ length: shards }, (_, i) => i), shardCount: shards };
}

/** discord.js's gateway manager (WebSocketManager: handlePacket, attachEvents and _ws are private in its typings). */
interface GatewayInternals {
  handlePacket(packet?: { t?: unknown; d?: unknown }, shard?: unknown): boolean;
  attachEvents(): void;
  /** @discordjs/ws's manager, created at login; attachEvents() subscribes discord.js to it. */
  _ws: { emit(event: string, ...args: unknown[]): boolean; strategy?: ShardingInternals } | null;
}

/** @discordjs/ws's SimpleShardingStrategy: its shards exist (spawn) before connect() opens them. */
interface ShardingInternals {
  shards?: Map<number, ShardInternals>;
  connect?(): Promise<void>;
}

/** @discordjs/ws's WebSocketShard: each WebSocket message goes to `this.onMessage` (looked up per message). */
interface ShardInternals {
  id: number;
  onMessage(data: unknown, isBinary: boolean): Promise<void>;
}

/**
 * One malformed gateway event costs that event only. Two places in discord.js can throw on a
 * packet it did not expect, and both are wrapped on this client (one manager for every shard):
 * - `handlePacket` runs the event's handler, which builds the library's structures (for
 *   INTERACTION_CREATE, the interaction: bit fields, the user, the message of a click…) and
 *   emits the client event, listeners included. Packets held back until the client is ready
 *   (its guilds received) are replayed from setImmediate, where a throw is an uncaught exception.
 * - its listeners on @discordjs/ws's manager (attachEvents): around handlePacket they read the
 *   payload themselves (a GUILD_CREATE's `d.id` while the shard waits for its guilds, READY's
 *   `guilds`), outside that guard. They run inside @discordjs/ws's async message handler, so a
 *   throw there is an unhandled rejection, which ends the process.
 * - @discordjs/ws's own message handler reads some payloads without checks (READY's
 *   `d.session_id`, HELLO's `d.heartbeat_interval`, INVALID_SESSION's `d`): each shard's
 *   `onMessage` is wrapped before the strategy connects it.
 * The event is logged once (its name, shard, id and interaction type, never its token) and
 * dropped; a guild whose GUILD_CREATE is lost counts as unavailable after discord.js's
 * `waitGuildTimeout`, as when Discord sends none. A lost HELLO or READY costs that connection:
 * Discord closes a session that does not heartbeat, and discord.js reconnects.
 */
function guardGatewayPackets(client: Client, log: Logger): void {
  const ws = client.ws as unknown as GatewayInternals;
  const logged = new WeakSet<object>();
  const drop = (err: unknown, packet: unknown, shardId?: unknown) => {
    if (packet && typeof packet === 'object') {
      if (logged.has(packet)) return;
      logged.add(packet);
    }
    const p = packet && typeof packet === 'object' ? (packet as { t?: unknown; d?: unknown }) : undefined;
    const d = p?.d && typeof p.d === 'object' ? (p.d as { id?: unknown; type?: unknown }) : undefined;
    log.warn({ err, event: p?.t, shardId, id: d?.id, type: d?.type }, 'discord gateway event that could not be handled; dropped');
  };
  const handlePacket = ws.handlePacket.bind(ws);
  ws.handlePacket = (packet, shard) => {
    try {
      return handlePacket(packet, shard);
    } catch (err) {
      drop(err, packet, (shard as { id?: unknown } | undefined)?.id);
      return true;
    }
  };
  const attachEvents = ws.attachEvents.bind(ws);
  ws.attachEvents = () => {
    attachEvents();
    const manager = ws._ws;
    if (!manager) return;
    const emit = manager.emit.bind(manager);
    manager.emit = (event, ...args) => {
      try {
        return emit(event, ...args);
      } catch (err) {
        // 'dispatch' carries { data: packet, shardId }, 'ready' { data: READY's d, shardId }.
        const arg = args[0] as { data?: unknown; shardId?: unknown } | undefined;
        drop(err, event === 'dispatch' ? arg?.data : { t: event === 'ready' ? 'READY' : event, d: arg?.data }, arg?.shardId);
        return true;
      }
    };
    const strategy = manager.strategy;
    if (!strategy?.connect || !strategy.shards) return;
    const connect = strategy.connect.bind(strategy);
    const guarded = new WeakSet<ShardInternals>();
    strategy.connect = () => {
      for (const shard of strategy.shards!.values()) {
        if (guarded.has(shard)) continue;
        guarded.add(shard);
        const onMessage = shard.onMessage.bind(shard);
        shard.onMessage = (data, isBinary) =>
          onMessage(data, isBinary).catch((err: unknown) => {
            // Unpacked again only for the log line (uncompressed JSON text, as the bot connects).
            let packet: unknown;
            try {
              packet = typeof data === 'string' ? JSON.parse(data) : undefined;
            } catch {
              packet = undefined;
            }
            drop(err, packet, shard.id);
          });
      }
      return connect();
    };
  };
}

/**
 * Full-size originals of results that had to be re-encoded for Discord's upload limit, served
 * from the job's stored file: GET /discord/originals/<jobId>/<taskIndex>. The job id is
 * unguessable (71 bits), like the button that leads to it.
 */
function mountOriginals(http: HttpServer, engine: EngineApi, log: Logger): void {
  http.mount('GET', ORIGINALS_PATH_PREFIX, async (_req, res, { rest }) => {
    const [jobId, indexText] = rest.split('/');
    const job = jobId ? await engine.getJob(jobId) : undefined;
    const image = job?.tasks.find((t) => String(t.index) === indexText)?.image;
    const size = image ? await stat(image.path).then((s) => s.size, () => undefined) : undefined;
    if (!image || size === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('This image is no longer available.');
      return;
    }
    res.writeHead(200, { 'content-type': image.mime, 'content-length': String(size), 'cache-control': 'private, max-age=86400' });
    await pipeline(createReadStream(image.path), res).catch((err: unknown) => log.debug({ err, jobId }, 'original download interrupted'));
  });
}
