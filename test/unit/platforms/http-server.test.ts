import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/log.ts';
import { startHttpServer } from '../../../src/platforms/http/server.ts';
import { captureProcessErrors } from '../../support/process-errors.ts';

const silent = () => createLogger({ level: 'silent', pretty: false, destination: { write: () => undefined } });

describe('the bot HTTP server', () => {
  it('answers /healthz 200, then 503 once draining, while its routes keep answering until closed', async () => {
    const http = await startHttpServer(0, silent(), '127.0.0.1');
    try {
      http.mount('GET', '/ping', (_req, res) => void res.writeHead(200).end('pong'));
      expect((await fetch(`${http.localUrl}/healthz`)).status).toBe(200);
      http.drain();
      const health = await fetch(`${http.localUrl}/healthz`);
      expect([health.status, await health.json()]).toEqual([503, { ok: false, draining: true }]);
      const ping = await fetch(`${http.localUrl}/ping`);
      expect([ping.status, await ping.text()]).toEqual([200, 'pong']);
    } finally {
      await http.close();
    }
  });

  it('answers 500 for a route that throws, synchronously or not, and goes on serving', async () => {
    const fatal = captureProcessErrors();
    const http = await startHttpServer(0, silent(), '127.0.0.1');
    try {
      http.mount('GET', '/sync', () => {
        throw new Error('sync');
      });
      http.mount('GET', '/async', async () => {
        throw new Error('async');
      });
      for (const path of ['/sync', '/async']) expect((await fetch(`${http.localUrl}${path}`, { signal: AbortSignal.timeout(3000) })).status, path).toBe(500);
      expect((await fetch(`${http.localUrl}/healthz`)).status).toBe(200);
      expect(fatal.caught).toEqual([]);
    } finally {
      fatal.stop();
      await http.close();
    }
  });
});
