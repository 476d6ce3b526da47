/**
 * GET /metrics and GET /readyz on the real bot (src/app.ts) against the fakes: a few Discord jobs
 * (one made, one refused for quota, provider failures), then the scrape, read with a real
 * Prometheus text-format parser, must agree with what the fakes saw; its labels carry no user id,
 * prompt or API key; METRICS_TOKEN guards it. /readyz: 200 with everything up, 503 before the
 * Discord gateway is READY and while the store (a Redis of the test's own) is down.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBot, type BotHandle } from '../../src/app.ts';
import { parseConfig } from '../../src/config.ts';
import { METRIC_NAMES } from '../../src/metrics.ts';
import { keyIdOf } from '../../src/providers/http.ts';
import { startFakeDiscord } from '../fakes/discord/index.ts';
import type { FakeGateway } from '../fakes/discord/gateway.ts';
import { startFakeRunbase } from '../fakes/runbase.ts';
import { captureLogger, FAST_TIMING } from '../integration/engine-harness.ts';
import { parseScrape } from '../support/prometheus.ts';
import { expectDiscordInvariants, startDiscordHarness, USERS, type DiscordHarness } from './discord-harness.ts';

const TOKEN = 'metrics-Token_42';

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string; text: string }> {
  const res = await fetch(url, { headers });
  return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('GET /metrics', () => {
  let h: DiscordHarness;
  const users = {
    maker: { id: '300000000000000001', username: 'maker' },
    overQuota: { id: '300000000000000002', username: 'overquota' },
    moderated: { id: '300000000000000003', username: 'moderated' },
    outage: { id: '300000000000000004', username: 'outage' },
  };
  const prompts = ['a red fox in the snow', 'four lighthouses at dusk', 'a forbidden statue [fail:MODERATION_FAILED]', 'a bridge during an outage'];

  beforeAll(async () => {
    h = await startDiscordHarness({ env: { METRICS_TOKEN: TOKEN, QUOTA_DAILY_UNITS: '2' } });
    // One made (with one poll turned away by a 429 on the way), one refused for quota, one
    // failed by the provider (moderation), one create failed by a provider outage.
    h.runbase!.injectFault({ match: 'get', status: 429, times: 1 });
    const made = await h.result(await h.imagine(prompts[0]!, { user: users.maker, values: { model: 'runbase-2' } }));
    expect(made.attachments).toHaveLength(1);
    const refused = await h.privateAnswer(await h.imagine(prompts[1]!, { user: users.overQuota, values: { count: 4 } }));
    expect(refused.content).toContain("You're out of image quota");
    const moderated = await h.result(await h.imagine(prompts[2]!, { user: users.moderated, values: { model: 'runblob-2' } }));
    expect(moderated.content).toContain("Couldn't make your image");
    h.runbase!.injectFault({ match: 'create', status: 503, times: 1, body: { error: { code: 'INTERNAL', message: 'down' } } });
    const outage = await h.result(await h.imagine(prompts[3]!, { user: users.outage, values: { model: 'runbase-pro' } }));
    expect(outage.content).toMatch(/image service/);
    expectDiscordInvariants(h.discord);
  });
  afterAll(async () => {
    await h?.close();
  });

  const scrape = async () => {
    const res = await get(`${h.bot.http.localUrl}/metrics`, { authorization: `Bearer ${TOKEN}` });
    expect(res.status).toBe(200);
    return { ...res, metrics: parseScrape(res.text) };
  };

  it('answers 401 without the bearer token or with a wrong one, and the text format with it', async () => {
    const url = `${h.bot.http.localUrl}/metrics`;
    for (const headers of [{}, { authorization: 'Bearer wrong-token' }, { authorization: TOKEN }, { authorization: `Basic ${TOKEN}` }]) {
      const res = await get(url, headers);
      expect(res.status).toBe(401);
      expect(res.text).not.toContain('imagine_');
    }
    const ok = await scrape();
    expect(ok.type).toBe('text/plain; version=0.0.4; charset=utf-8');
    // Every declared name is exported, and prom-client's process metrics come along.
    for (const name of METRIC_NAMES) expect(ok.metrics.families.has(name), name).toBe(true);
    expect(ok.metrics.families.has('process_cpu_user_seconds_total')).toBe(true);
    expect(ok.metrics.families.has('nodejs_eventloop_lag_seconds')).toBe(true);
  });

  it('counts provider requests, 429s and errors as the fake providers saw them, per key id', async () => {
    const { metrics } = await scrape();
    const runbaseKey = keyIdOf(h.runbase!.apiKey);
    const runblobKey = keyIdOf(h.runblob!.apiKey);
    for (const [provider, fake, key] of [['runbase', h.runbase!, runbaseKey], ['runblob', h.runblob!, runblobKey]] as const) {
      expect(metrics.sum('imagine_provider_requests_total', { provider, key, kind: 'create' }), `${provider} creates`).toBe(fake.counts.create);
      expect(metrics.sum('imagine_provider_requests_total', { provider, key, kind: 'poll' }), `${provider} polls`).toBe(fake.counts.get);
      expect(metrics.sum('imagine_provider_rate_limited_total', { provider, key }), `${provider} 429s`).toBe(fake.counts.rateLimited);
      expect(metrics.count('imagine_provider_request_duration_seconds', { provider })).toBe(fake.counts.create + fake.counts.get);
      expect(metrics.count('imagine_rate_budget_wait_seconds', { provider, key })).toBe(fake.counts.create + fake.counts.get);
    }
    expect(h.runbase!.counts.rateLimited).toBe(1);
    expect(metrics.sum('imagine_provider_errors_total', { provider: 'runbase', code: 'PROVIDER_RATE_LIMITED' })).toBe(1);
    expect(metrics.sum('imagine_provider_errors_total', { provider: 'runbase', code: 'PROVIDER_SERVER_ERROR' })).toBe(1);
    expect(metrics.sum('imagine_provider_errors_total', { provider: 'runblob', code: 'TASK_MODERATION_FAILED' })).toBe(1);
    expect(metrics.sum('imagine_provider_errors_total')).toBe(3);
  });

  it('counts jobs started and finished, refusals by code, spend, acknowledgements, and nothing left in flight', async () => {
    // The last run ends (lease released) just after its delivery.
    const metrics = await until('no job in flight', async () => {
      const { metrics: m } = await scrape();
      return m.sum('imagine_jobs_in_flight') === 0 ? m : undefined;
    });
    expect(metrics.sum('imagine_jobs_started_total', { platform: 'discord' })).toBe(3);
    expect(metrics.sum('imagine_jobs_started_total', { model: 'runbase-2', provider: 'runbase' })).toBe(1);
    expect(metrics.sum('imagine_jobs_finished_total', { platform: 'discord', outcome: 'succeeded' })).toBe(1);
    expect(metrics.sum('imagine_jobs_finished_total', { model: 'runbase-2', provider: 'runbase', outcome: 'succeeded' })).toBe(1);
    expect(metrics.sum('imagine_jobs_finished_total', { model: 'runblob-2', provider: 'runblob', outcome: 'failed' })).toBe(1);
    expect(metrics.sum('imagine_jobs_finished_total', { model: 'runbase-pro', provider: 'runbase', outcome: 'failed' })).toBe(1);
    expect(metrics.count('imagine_job_duration_seconds', { platform: 'discord' })).toBe(3);
    // The quota refusal is the only one (job failures are told in their placeholder, not refused).
    expect(metrics.samples('imagine_refusals_total')).toEqual([{ labels: { platform: 'discord', code: 'QUOTA_EXCEEDED' }, value: '1' }]);
    // Spend: what the fake Runbase charged (its costUsd is in micro-dollars; only the made image cost anything).
    const charged = h.runbase!.spentMicros(h.runbase!.apiKey) / 1e6;
    expect(charged).toBeGreaterThan(0);
    expect(metrics.sum('imagine_spend_usd_total', { provider: 'runbase' })).toBeCloseTo(charged, 9);
    // One acknowledgement per interaction.
    expect(metrics.count('imagine_ack_latency_seconds', { platform: 'discord' })).toBe(h.discord.interactions.size);
    expect(metrics.sum('imagine_deliveries_failed_total')).toBe(0);
  });

  it('labels carry no user id, prompt or API key', async () => {
    const { text, metrics } = await scrape();
    const forbidden = [
      ...Object.values(users).map((u) => u.id),
      ...Object.values(USERS).map((u) => u.id),
      // The prompts' words (not the fake's [fail:CODE] marker, whose code is a catalogue code).
      ...prompts.flatMap((p) => p.replace(/\[.*?\]/g, '').split(/\W+/).filter((w) => w.length > 4)),
      h.runbase!.apiKey,
      h.runblob!.apiKey,
    ];
    for (const word of forbidden) expect(text, word).not.toContain(word);
    const values = [...metrics.families.keys()].flatMap((name) =>
      [...metrics.samples(name), ...metrics.samples(`${name}_count`)].flatMap((s) => Object.values(s.labels ?? {})),
    );
    expect(values.length).toBeGreaterThan(0);
    for (const v of values) expect(v).toMatch(/^[A-Za-z0-9_.+\-:]{0,40}$/);
  });

  it('/readyz answers 200 with the store and the Discord gateway up', async () => {
    const res = await get(`${h.bot.http.localUrl}/readyz`);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({ ready: true, checks: { store: true, discord: true } });
  });
});

describe('GET /readyz', () => {
  it('answers 503 naming discord until the gateway is READY, then 200', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'readyz-'));
    const discord = await startFakeDiscord({});
    const runbase = await startFakeRunbase({ rateLimit: false });
    // Hold the gateway's WebSocket upgrades until released: the bot waits for READY meanwhile.
    const gateway = (discord as unknown as { gateway: FakeGateway }).gateway;
    const upgrade = gateway.handleUpgrade.bind(gateway);
    let release!: () => void;
    let released!: Promise<void>;
    const hold = () => (released = new Promise<void>((r) => (release = r)));
    hold();
    gateway.handleUpgrade = (req, socket, head) => void released.then(() => upgrade(req, socket, head));
    const port = await freePort();
    const config = parseConfig({
      DISCORD_TOKEN: discord.token,
      DISCORD_APPLICATION_ID: discord.applicationId,
      DISCORD_API_URL: discord.apiUrl,
      RUNBASE_API_KEY: runbase.apiKey,
      RUNBASE_API_URL: runbase.url,
      STORE_URL: `sqlite://${join(dir, 'imagine.sqlite')}`,
      DATA_DIR: join(dir, 'data'),
      PORT: String(port),
    });
    const starting = startBot(config, { log: captureLogger().log, engineTiming: FAST_TIMING });
    let bot: BotHandle | undefined;
    try {
      const before = await until('the HTTP server', () => get(`http://127.0.0.1:${port}/readyz`));
      expect(before.status).toBe(503);
      expect(JSON.parse(before.text)).toEqual({ ready: false, checks: { store: true, discord: false }, notReady: ['discord'] });
      // Liveness is another matter: the process is alive.
      expect((await get(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      release();
      bot = await starting;
      const after = await get(`http://127.0.0.1:${port}/readyz`);
      expect(after.status).toBe(200);
      expect(JSON.parse(after.text)).toEqual({ ready: true, checks: { store: true, discord: true } });
      // The gateway connection drops (a resumable close) and cannot come back yet: not ready
      // until the session is resumed.
      hold();
      for (const session of gateway.sessions) session.socket.close(4000, 'Unknown error');
      const dropped = await until('503 while the gateway reconnects', async () => {
        const r = await get(`http://127.0.0.1:${port}/readyz`);
        return r.status === 503 ? r : undefined;
      });
      expect(JSON.parse(dropped.text)).toEqual({ ready: false, checks: { store: true, discord: false }, notReady: ['discord'] });
      release();
      await until('200 once resumed', async () => ((await get(`http://127.0.0.1:${port}/readyz`)).status === 200 ? true : undefined));
      // Draining (SIGTERM): not ready any more.
      bot.http.drain();
      expect(JSON.parse((await get(`http://127.0.0.1:${port}/readyz`)).text)).toMatchObject({ ready: false, notReady: ['draining'] });
    } finally {
      release();
      await (bot ?? (await starting.catch(() => undefined)))?.stop();
      await discord.close();
      await runbase.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  describe('with a Redis store', () => {
    let redisPort: number;
    let redis: ChildProcess | undefined;
    let dir: string;

    const startRedis = async () => {
      redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
      await until('redis-server to listen', async () => {
        const ping = spawn('redis-cli', ['-p', String(redisPort), 'ping'], { stdio: ['ignore', 'pipe', 'ignore'] });
        let out = '';
        ping.stdout.on('data', (d: Buffer) => (out += d.toString()));
        await new Promise((r) => ping.on('close', r));
        return out.trim() === 'PONG' ? true : undefined;
      });
    };
    const stopRedis = async () => {
      const proc = redis;
      redis = undefined;
      if (!proc || proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      await exited;
    };

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'readyz-redis-'));
      redisPort = await freePort();
      await startRedis();
    });
    afterAll(async () => {
      await stopRedis();
      await rm(dir, { recursive: true, force: true });
    });

    it('answers 503 naming the store while Redis is down, and 200 again once it is back', async () => {
      const runbase = await startFakeRunbase({ rateLimit: false });
      const config = parseConfig({
        RUNBASE_API_KEY: runbase.apiKey,
        RUNBASE_API_URL: runbase.url,
        STORE_URL: `redis://127.0.0.1:${redisPort}`,
        DATA_DIR: join(dir, 'data'),
        PORT: '0',
      });
      const bot = await startBot(config, { log: captureLogger().log, engineTiming: { ...FAST_TIMING, takeoverIntervalMs: 0 } });
      const readyz = async () => {
        const res = await get(`${bot.http.localUrl}/readyz`);
        return { status: res.status, body: JSON.parse(res.text) as unknown };
      };
      try {
        expect(await readyz()).toEqual({ status: 200, body: { ready: true, checks: { store: true } } });
        await stopRedis();
        const down = await until('503 with Redis down', async () => {
          const r = await readyz();
          return r.status === 503 ? r : undefined;
        });
        expect(down.body).toEqual({ ready: false, checks: { store: false }, notReady: ['store'] });
        await startRedis();
        await until('200 with Redis back', async () => ((await readyz()).status === 200 ? true : undefined));
      } finally {
        await bot.stop();
        await runbase.close();
      }
    });
  });
});
