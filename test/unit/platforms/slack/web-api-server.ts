/**
 * A bare HTTP server standing in for Slack's Web API in the transport tests (web-fetch.test.ts,
 * web-api.test.ts): each method answers `{ ok: true }` unless a test sets its answer, and every
 * request is kept as it arrived (method, body, authorization, content type).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll } from 'vitest';

export type Answer = (req: IncomingMessage, body: string, res: ServerResponse) => void;
export interface Seen {
  method: string;
  body: string;
  authorization?: string | undefined;
  contentType?: string | undefined;
}

export function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(JSON.stringify(body));
}

/** Starts the server before the file's tests and closes it after them; `apiUrl` is set once it listens. */
export function webApiServer(): { answers: Map<string, Answer>; seen: Seen[]; readonly apiUrl: string } {
  const answers = new Map<string, Answer>();
  const seen: Seen[] = [];
  let apiUrl = '';
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const method = req.url!.slice('/api/'.length);
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ method, body, authorization: req.headers.authorization, contentType: req.headers['content-type'] });
      const answer = answers.get(method);
      if (answer) answer(req, body, res);
      else json(res, 200, { ok: true });
    });
  });
  beforeAll(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));
  return {
    answers,
    seen,
    get apiUrl() {
      return apiUrl;
    },
  };
}
