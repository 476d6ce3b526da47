/**
 * A tiny scripted HTTP server for provider client unit tests: answers each request with the next
 * queued reply (or the fallback handler) and records what the provider would have received.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger, type Logger } from '../../../src/log.ts';

export interface RecordedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: unknown;
}

export type Reply =
  | { status?: number; json?: unknown; text?: string; headers?: Record<string, string> }
  /** Close the socket without answering. */
  | 'destroy'
  /** Never answer (until the server closes). */
  | 'hang';

export interface ScriptServer {
  url: string;
  port: number;
  requests: RecordedRequest[];
  enqueue(...replies: Reply[]): void;
  close(): Promise<void>;
}

export async function startScriptServer(fallback: (req: RecordedRequest) => Reply = () => ({ status: 599, text: 'no reply queued' }), port = 0): Promise<ScriptServer> {
  const queue: Reply[] = [];
  const requests: RecordedRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      const recorded: RecordedRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, text, json };
      requests.push(recorded);
      const reply = queue.shift() ?? fallback(recorded);
      if (reply === 'destroy') {
        req.socket.destroy();
        return;
      }
      if (reply === 'hang') return;
      const body = reply.json !== undefined ? JSON.stringify(reply.json) : (reply.text ?? '');
      res.writeHead(reply.status ?? 200, {
        'content-type': reply.json !== undefined ? 'application/json' : 'text/plain',
        ...reply.headers,
      });
      res.end(body);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const actualPort = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${actualPort}`,
    port: actualPort,
    requests,
    enqueue: (...replies) => queue.push(...replies),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port that nothing listens on (bound then released). */
export async function freePort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A logger whose JSON lines are kept in memory. */
export function memoryLogger(): { log: Logger; lines: () => string; records: () => Record<string, unknown>[] } {
  const out: string[] = [];
  const log = createLogger({ level: 'debug', destination: { write: (chunk: string) => void out.push(chunk) } });
  return {
    log,
    lines: () => out.join(''),
    records: () => out.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** An injected sleep that records the delays and returns at once. */
export function recordingSleep(onSleep?: (ms: number) => void | Promise<void>): { sleep: (ms: number) => Promise<void>; delays: number[] } {
  const delays: number[] = [];
  return {
    delays,
    sleep: async (ms: number) => {
      delays.push(ms);
      await onSleep?.(ms);
    },
  };
}
