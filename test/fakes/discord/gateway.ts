/**
 * The fake Discord gateway (v10, JSON encoding, no compression): HELLO, IDENTIFY → READY +
 * GUILD_CREATE, heartbeats ACKed, RESUME → RESUMED, and dispatches (INTERACTION_CREATE) to the
 * newest identified session of the right shard, as Discord sends each event to one session of
 * the bot. Sharding as docs/discord.md "Sharding" describes it: IDENTIFY's `shard: [id, count]`
 * (default [0, 1]) is checked (4010 Invalid shard), a session that would hold more guilds than
 * one shard may is refused (4011 Sharding required), and a guild's events go to shard
 * `(guild_id >> 22) % count` only, DMs to shard 0.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, WebSocket } from 'ws';
import { snowflake } from './snowflake.ts';

export const GatewayOp = { Dispatch: 0, Heartbeat: 1, Identify: 2, Resume: 6, Reconnect: 7, InvalidSession: 9, Hello: 10, HeartbeatAck: 11 } as const;

export interface GatewayReadyData {
  token: string;
  user: Record<string, unknown>;
  application: { id: string; flags: number };
  guilds: () => Record<string, unknown>[];
  resumeUrl: string;
  /** Discord refuses a session (4011) that would hold more guilds than this; Discord's limit is 2,500. */
  maxGuildsPerShard: number;
}

/** A shard as IDENTIFY names it: [shard_id, num_shards]. */
export type ShardPair = readonly [id: number, count: number];
const UNSHARDED: ShardPair = [0, 1];

/**
 * The shard that receives a guild's events: `(guild_id >> 22) % num_shards`; DMs (no guild)
 * go to shard 0 (https://discord.com/developers/docs/events/gateway#sharding).
 */
export function shardOf(guildId: string | undefined, count: number): number {
  return guildId === undefined ? 0 : Number((BigInt(guildId) >> 22n) % BigInt(count));
}

function isShardPair(v: unknown): v is ShardPair {
  return (
    Array.isArray(v) && v.length === 2 && v.every((n) => Number.isSafeInteger(n)) && (v[1] as number) >= 1 && (v[0] as number) >= 0 && (v[0] as number) < (v[1] as number)
  );
}

interface Session {
  socket: WebSocket;
  seq: number;
  sessionId?: string;
  intents?: number;
  identifiedAt?: number;
  shard: ShardPair;
}

export class FakeGateway {
  readonly wss = new WebSocketServer({ noServer: true });
  readonly sessions: Session[] = [];
  /** Every IDENTIFY payload received (intents, shard…), for assertions. */
  readonly identifies: Record<string, unknown>[] = [];
  readonly heartbeatIntervalMs: number;
  private readonly ready: GatewayReadyData;
  private readyWaiters: (() => void)[] = [];
  /** The shard of every session identified so far, by session id, for RESUME. */
  private readonly shardOfSession = new Map<string, ShardPair>();
  /** Dispatches for the next session that identifies, sent between its READY and its GUILD_CREATEs. */
  readonly beforeGuilds: { t: string; d: unknown }[] = [];

  constructor(ready: GatewayReadyData, heartbeatIntervalMs = 41_250) {
    this.ready = ready;
    this.heartbeatIntervalMs = heartbeatIntervalMs;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws));
  }

  private onConnection(ws: WebSocket): void {
    const session: Session = { socket: ws, seq: 0, shard: UNSHARDED };
    this.sessions.push(session);
    ws.send(JSON.stringify({ op: GatewayOp.Hello, d: { heartbeat_interval: this.heartbeatIntervalMs }, s: null, t: null }));
    ws.on('message', (raw) => {
      let packet: { op: number; d: unknown };
      try {
        packet = JSON.parse(String(raw)) as { op: number; d: unknown };
      } catch {
        ws.close(4002, 'Decode error');
        return;
      }
      this.onPacket(session, packet);
    });
    ws.on('close', () => {
      const i = this.sessions.indexOf(session);
      if (i !== -1) this.sessions.splice(i, 1);
    });
  }

  private onPacket(session: Session, packet: { op: number; d: unknown }): void {
    const ws = session.socket;
    switch (packet.op) {
      case GatewayOp.Heartbeat:
        ws.send(JSON.stringify({ op: GatewayOp.HeartbeatAck, d: null, s: null, t: null }));
        return;
      case GatewayOp.Identify: {
        const d = packet.d as { token?: string; intents?: number; shard?: unknown };
        this.identifies.push(packet.d as Record<string, unknown>);
        if (d.token !== this.ready.token && d.token !== `Bot ${this.ready.token}`) {
          ws.close(4004, 'Authentication failed.');
          return;
        }
        if (typeof d.intents !== 'number') {
          ws.close(4013, 'Invalid intent(s).');
          return;
        }
        const shard = d.shard === undefined ? UNSHARDED : d.shard;
        if (!isShardPair(shard)) {
          ws.close(4010, 'Invalid shard.');
          return;
        }
        const [shardId, shardCount] = shard;
        const guilds = this.ready.guilds().filter((g) => shardOf(String(g.id), shardCount) === shardId);
        if (guilds.length > this.ready.maxGuildsPerShard) {
          ws.close(4011, 'Sharding required.');
          return;
        }
        session.sessionId = snowflake();
        session.intents = d.intents;
        session.identifiedAt = Date.now();
        session.shard = [shardId, shardCount];
        this.shardOfSession.set(session.sessionId, session.shard);
        this.dispatch(session, 'READY', {
          v: 10,
          user: this.ready.user,
          guilds: guilds.map((g) => ({ id: g.id, unavailable: true })),
          session_id: session.sessionId,
          resume_gateway_url: this.ready.resumeUrl,
          shard: [shardId, shardCount],
          application: this.ready.application,
          private_channels: [],
          relationships: [],
          presences: [],
          guild_join_requests: [],
          user_settings: {},
        });
        for (const { t, d } of this.beforeGuilds.splice(0)) this.dispatch(session, t, d);
        // GUILD_CREATE needs the GUILDS intent (1 << 0).
        if (d.intents & 1) for (const g of guilds) this.dispatch(session, 'GUILD_CREATE', g);
        for (const w of this.readyWaiters.splice(0)) w();
        return;
      }
      case GatewayOp.Resume: {
        const d = packet.d as { token?: string; session_id?: string };
        if (d.token !== this.ready.token && d.token !== `Bot ${this.ready.token}`) {
          ws.close(4004, 'Authentication failed.');
          return;
        }
        session.sessionId = d.session_id ?? snowflake();
        session.shard = this.shardOfSession.get(session.sessionId) ?? UNSHARDED;
        session.identifiedAt = Date.now();
        this.dispatch(session, 'RESUMED', {});
        for (const w of this.readyWaiters.splice(0)) w();
        return;
      }
      default:
        // Presence updates, request guild members, voice state: accepted and ignored.
        return;
    }
  }

  private dispatch(session: Session, t: string, d: unknown): void {
    session.seq += 1;
    session.socket.send(JSON.stringify({ op: GatewayOp.Dispatch, t, s: session.seq, d }));
  }

  /**
   * The newest open, identified session of the shard that `guildId`'s events go to (shard 0 when
   * undefined: DMs); Discord delivers an event to one session.
   */
  current(guildId?: string): Session | undefined {
    return [...this.sessions]
      .filter((s) => s.identifiedAt !== undefined && s.socket.readyState === WebSocket.OPEN && shardOf(guildId, s.shard[1]) === s.shard[0])
      .sort((a, b) => (b.identifiedAt ?? 0) - (a.identifiedAt ?? 0))[0];
  }

  /** Sends a dispatch to the session of `guildId`'s shard (shard 0 without one): that shard, or undefined when it has no session. */
  send(t: string, d: unknown, guildId?: string): ShardPair | undefined {
    const s = this.current(guildId);
    if (!s) return undefined;
    this.dispatch(s, t, d);
    return s.shard;
  }

  /**
   * Sends a dispatch built from the receiving session's intents (undefined: not sent, e.g. the
   * session lacks the event's intent); returns whether it was sent.
   */
  sendForIntents(t: string, build: (intents: number) => unknown, guildId?: string): boolean {
    const s = this.current(guildId);
    if (!s) return false;
    const d = build(s.intents ?? 0);
    if (d === undefined) return false;
    this.dispatch(s, t, d);
    return true;
  }

  /** The shard of every open, identified session, oldest first. */
  shards(): ShardPair[] {
    return this.sessions.filter((s) => s.identifiedAt !== undefined && s.socket.readyState === WebSocket.OPEN).map((s) => s.shard);
  }

  /** Resolves once a session has identified (or resumed). */
  waitForSession(timeoutMs = 10_000): Promise<void> {
    if (this.shards().length > 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no bot identified on the fake gateway')), timeoutMs);
      this.readyWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    for (const s of this.sessions) s.socket.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}
