import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/log.ts';
import { mountMetrics, mountReadiness, startHttpServer, type ReadinessCheck } from '../../../src/platforms/http/server.ts';

const silent = () => createLogger({ level: 'silent', pretty: false, destination: { write: () => undefined } });

describe('GET /readyz and GET /metrics', () => {
  it('readiness: 200 when every check passes; 503 naming a failing, throwing or rejecting one, and while draining', async () => {
    const http = await startHttpServer(0, silent(), '127.0.0.1');
    try {
      const checks = new Map<string, ReadinessCheck>([['store', () => true]]);
      mountReadiness(http, checks);
      const readyz = async () => {
        const res = await fetch(`${http.localUrl}/readyz`);
        return [res.status, await res.json()];
      };
      expect(await readyz()).toEqual([200, { ready: true, checks: { store: true } }]);
      checks.set('discord', () => false);
      checks.set('slack', () => {
        throw new Error('boom');
      });
      checks.set('other', () => Promise.reject(new Error('down')));
      expect(await readyz()).toEqual([
        503,
        { ready: false, checks: { store: true, discord: false, slack: false, other: false }, notReady: ['discord', 'slack', 'other'] },
      ]);
      checks.clear();
      http.drain();
      expect(await readyz()).toEqual([503, { ready: false, checks: {}, notReady: ['draining'] }]);
    } finally {
      await http.close();
    }
  });

  it('metrics: open without a token; with one, 401 unless the exact bearer token is sent', async () => {
    const source = { contentType: 'text/plain; version=0.0.4; charset=utf-8', text: async () => 'up 1\n' };
    const open = await startHttpServer(0, silent(), '127.0.0.1');
    const guarded = await startHttpServer(0, silent(), '127.0.0.1');
    try {
      mountMetrics(open, source, undefined);
      mountMetrics(guarded, source, 'secret-1');
      const res = await fetch(`${open.localUrl}/metrics`);
      expect([res.status, res.headers.get('content-type'), await res.text()]).toEqual([200, source.contentType, 'up 1\n']);
      for (const authorization of [undefined, 'Bearer secret-2', 'Bearer secret-1x', 'Bearer secret', 'secret-1']) {
        const r = await fetch(`${guarded.localUrl}/metrics`, authorization ? { headers: { authorization } } : {});
        expect([r.status, r.headers.get('www-authenticate')]).toEqual([401, 'Bearer realm="metrics"']);
      }
      const ok = await fetch(`${guarded.localUrl}/metrics`, { headers: { authorization: 'Bearer secret-1' } });
      expect([ok.status, await ok.text()]).toEqual([200, 'up 1\n']);
    } finally {
      await open.close();
      await guarded.close();
    }
  });
});
