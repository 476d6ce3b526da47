/**
 * The fake Discord gateway (v10, JSON encoding, no compression): HELLO, IDENTIFY → READY +
 * GUILD_CREATE, heartbeats ACKed, RESUME → RESUMED, and dispatches (INTERACTION_CREATE) to the
 * newest identified session, as Discord sends each event to one session of the bot.
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
}

interface Session {
  socket: WebSocket;
  seq: number;
  sessionId?: string;
  intents?: number;
  identifiedAt?: number;
}

export class FakeGateway {
  readonly wss = new WebSocketServer({ noServer: true });
  readonly sessions: Session[] = [];
  /** Every IDENTIFY payload received (intents, shard…), for assertions. */
  readonly identifies: Record<string, unknown>[] = [];
  readonly heartbeatIntervalMs: number;
  private readonly ready: GatewayReadyData;
  private readyWaiters: (() => void)[] = [];
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
    const session: Session = { socket: ws, seq: 0 };
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
        const d = packet.d as { token?: string; intents?: number };
        this.identifies.push(packet.d as Record<string, unknown>);
        if (d.token !== this.ready.token && d.token !== `Bot ${this.ready.token}`) {
          ws.close(4004, 'Authentication failed.');
          return;
        }
        if (typeof d.intents !== 'number') {
          ws.close(4013, 'Invalid intent(s).');
          return;
        }
        session.sessionId = snowflake();
        session.intents = d.intents;
        session.identifiedAt = Date.now();
        const guilds = this.ready.guilds();
        this.dispatch(session, 'READY', {
          v: 10,
          user: this.ready.user,
          guilds: guilds.map((g) => ({ id: g.id, unavailable: true })),
          session_id: session.sessionId,
          resume_gateway_url: this.ready.resumeUrl,
          shard: [0, 1],
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

  /** The newest open, identified session (Discord delivers an event to one session). */
  current(): Session | undefined {
    return [...this.sessions]
      .filter((s) => s.identifiedAt !== undefined && s.socket.readyState === WebSocket.OPEN)
      .sort((a, b) => (b.identifiedAt ?? 0) - (a.identifiedAt ?? 0))[0];
  }

  /** Sends a dispatch to the current session; false when no bot is connected. */
  send(t: string, d: unknown): boolean {
    const s = this.current();
    if (!s) return false;
    this.dispatch(s, t, d);
    return true;
  }

  /** Resolves once a session has identified (or resumed). */
  waitForSession(timeoutMs = 10_000): Promise<void> {
    if (this.current()) return Promise.resolve();
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
