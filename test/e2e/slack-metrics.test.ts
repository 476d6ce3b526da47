/**
 * Slack's side of GET /metrics and GET /readyz on the real bot: refusals counted by code in the
 * one catch (listeners/after-ack.ts), one acknowledgement latency per ack() in HTTP mode and in
 * Socket Mode, and /readyz naming slack.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { FakeMessage } from '../fakes/slack/fake-slack.ts';
import { parseScrape } from '../support/prometheus.ts';
import { startSlackHarness, type SlackHarness } from './slack-harness.ts';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });
const RESULT_TIMEOUT_MS = 60_000;
const alice = { id: 'UMETRICS', name: 'alice' };
const isResult = (m: FakeMessage) => JSON.stringify(m.blocks ?? []).includes('imagine:delete:');

async function scrape(h: SlackHarness) {
  const res = await fetch(`${h.bot.http.localUrl}/metrics`);
  expect(res.status).toBe(200);
  return parseScrape(await res.text());
}

async function readyz(h: SlackHarness) {
  const res = await fetch(`${h.bot.http.localUrl}/readyz`);
  return { status: res.status, body: (await res.json()) as unknown };
}

describe('Slack metrics (HTTP mode)', () => {
  let h: SlackHarness;
  beforeAll(async () => {
    h = await startSlackHarness({ env: { QUOTA_DAILY_UNITS: '2' } });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('counts refusals by code, acknowledgements and the job', async () => {
    expect((await h.driver.slashCommand({ user: alice, channel: 'CMET', text: 'a cat --ar 7:3' })).status).toBe(200);
    expect((await h.driver.slashCommand({ user: alice, channel: 'CMET', text: 'a cat --n 4' })).status).toBe(200);
    await h.fake.waitFor(() => h.fake.ephemerals.filter((e) => e.channel === 'CMET').length === 2, 10_000, 'two refusals');
    expect((await h.driver.slashCommand({ user: alice, channel: 'CMET', text: 'a quiet harbour' })).status).toBe(200);
    await h.fake.waitFor(() => h.fake.messagesIn('CMET').find(isResult), RESULT_TIMEOUT_MS, 'the result');

    const m = await scrape(h);
    expect(m.sum('imagine_refusals_total', { platform: 'slack' })).toBe(2);
    expect(m.sum('imagine_refusals_total', { platform: 'slack', code: 'QUOTA_EXCEEDED' })).toBe(1);
    expect(m.sum('imagine_refusals_total', { platform: 'slack', code: 'INTERNAL' })).toBe(0);
    // Every request to /slack/events was acknowledged once, each observed.
    expect(m.count('imagine_ack_latency_seconds', { platform: 'slack' })).toBe(3);
    expect(m.sum('imagine_jobs_started_total', { platform: 'slack' })).toBe(1);
    expect(m.sum('imagine_provider_requests_total', { kind: 'create' })).toBe(h.runbase.counts.create + h.runblob.counts.create);
  });

  it('/readyz names the store and slack', async () => {
    expect(await readyz(h)).toEqual({ status: 200, body: { ready: true, checks: { store: true, slack: true } } });
  });
});

describe('Slack metrics (Socket Mode)', () => {
  let h: SlackHarness;
  beforeAll(async () => {
    h = await startSlackHarness({ socketMode: true });
    await h.fake.socketConnected();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('observes each envelope acknowledged over the WebSocket, and is ready while connected', async () => {
    expect(await readyz(h)).toEqual({ status: 200, body: { ready: true, checks: { store: true, slack: true } } });
    const { form } = h.driver.payloads.slashCommand({ user: alice, channel: 'CSOCKMET', text: 'a moth at a lamp' });
    await h.fake.socketSend('slash_commands', form);
    await h.fake.waitFor(() => h.fake.messagesIn('CSOCKMET').find(isResult), RESULT_TIMEOUT_MS, 'the result');
    expect((await scrape(h)).count('imagine_ack_latency_seconds', { platform: 'slack' })).toBe(1);
  });
});
