import { PerformanceObserver } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { GC_DURATION_METRIC, METRIC_NAMES, Metrics } from '../../src/metrics.ts';
import { parseScrape } from '../support/prometheus.ts';
import { createLogger } from '../../src/log.ts';
import { SqliteStore, MEMORY_DATABASE } from '../../src/engine/store-sqlite.ts';

describe('Metrics', () => {
  it('declares exactly METRIC_NAMES, in a registry of its own per instance', async () => {
    const a = new Metrics({ defaultMetrics: false });
    const b = new Metrics({ defaultMetrics: false });
    expect(a.registry.getMetricsAsArray().map((m) => m.name).sort()).toEqual([...METRIC_NAMES].sort());
    a.refusals.inc({ platform: 'discord', code: 'QUOTA_EXCEEDED' });
    expect(await a.text()).toContain('imagine_refusals_total{platform="discord",code="QUOTA_EXCEEDED"} 1');
    expect(await b.text()).not.toContain('imagine_refusals_total{');
  });

  it('counts a provider attempt: request, latency, a 429 and its error code', async () => {
    const m = new Metrics({ defaultMetrics: false });
    m.providerAttempt({ provider: 'runbase', keyId: 'abc123', kind: 'poll', seconds: 0.2, status: 429, errorCode: 'PROVIDER_RATE_LIMITED' });
    m.providerAttempt({ provider: 'runbase', keyId: 'abc123', kind: 'create', seconds: 0.1, status: undefined, errorCode: undefined });
    const text = await m.text();
    expect(text).toContain('imagine_provider_requests_total{provider="runbase",key="abc123",kind="poll"} 1');
    expect(text).toContain('imagine_provider_requests_total{provider="runbase",key="abc123",kind="create"} 1');
    expect(text).toContain('imagine_provider_rate_limited_total{provider="runbase",key="abc123"} 1');
    expect(text).toContain('imagine_provider_errors_total{provider="runbase",code="PROVIDER_RATE_LIMITED"} 1');
    expect(text).toContain('imagine_provider_request_duration_seconds_count{provider="runbase",kind="create"} 1');
  });

  it('counts a job by its terminal state: a canceled job is neither a success nor a failure', async () => {
    const m = new Metrics({ defaultMetrics: false });
    const job = (state: string) => ({ state, createdAt: 0, updatedAt: 1000, finishedAt: 1000, request: { model: 'runblob-2', requester: { platform: 'slack' } } }) as never;
    for (const state of ['canceled', 'succeeded', 'failed', 'canceled']) m.jobFinished(job(state), undefined);
    const text = await m.text();
    expect(text).toContain('imagine_jobs_finished_total{platform="slack",model="runblob-2",provider="none",outcome="canceled"} 2');
    expect(text).toContain('imagine_jobs_finished_total{platform="slack",model="runblob-2",provider="none",outcome="succeeded"} 1');
    expect(text).toContain('imagine_jobs_finished_total{platform="slack",model="runblob-2",provider="none",outcome="failed"} 1');
  });

  it('includes prom-client default process metrics unless turned off', async () => {
    const m = new Metrics();
    try {
      expect(await m.text()).toContain('process_cpu_user_seconds_total');
    } finally {
      m.close();
    }
  });

  it('counts every garbage collection, also several handed over at once by a busy loop, until closed', async () => {
    const m = new Metrics();
    let seen = 0;
    let seenSeconds = 0;
    let largestBatch = 0;
    const own = new PerformanceObserver((list) => {
      const entries = list.getEntries();
      largestBatch = Math.max(largestBatch, entries.length);
      seen += entries.length;
      for (const e of entries) seenSeconds += e.duration / 1000;
    });
    /** Turns busy enough for several young-generation collections each, as under load. */
    const busyTurns = async (until: () => boolean) => {
      let live: object[] = [];
      for (let turn = 0; turn < 20 && !until(); turn++) {
        for (let i = 0; i < 400_000; i++) {
          live.push({ i, s: `x${i}` });
          if (live.length > 50_000) live = [];
        }
        await nextTurn();
      }
      await new Promise((r) => setTimeout(r, 50));
    };
    try {
      // Observed from after this scrape on: every collection seen here is in the metric's difference.
      const before = parseScrape(await m.text()).count(GC_DURATION_METRIC);
      own.observe({ entryTypes: ['gc'] });
      await busyTurns(() => largestBatch > 1);
      // Otherwise this test would not show what prom-client's own histogram loses.
      expect(largestBatch).toBeGreaterThan(1);
      // Read before the scrape, which may itself bring more collections.
      const [seenNow, seenSecondsNow] = [seen, seenSeconds];
      const scrape = parseScrape(await m.text());
      expect(scrape.count(GC_DURATION_METRIC) - before).toBeGreaterThanOrEqual(seenNow);
      expect(scrape.count(GC_DURATION_METRIC, { kind: 'minor' })).toBeGreaterThan(0);
      expect(scrape.sum(`${GC_DURATION_METRIC}_sum`)).toBeGreaterThanOrEqual(seenSecondsNow * 0.999);

      m.close();
      const counted = parseScrape(await m.text()).count(GC_DURATION_METRIC);
      const seenBefore = seen;
      await busyTurns(() => seen > seenBefore);
      expect(seen).toBeGreaterThan(seenBefore);
      expect(parseScrape(await m.text()).count(GC_DURATION_METRIC)).toBe(counted);
    } finally {
      own.disconnect();
      m.close();
    }
  });
});

describe('Store.ping (SQLite)', () => {
  it('answers while open and rejects once closed', async () => {
    const store = new SqliteStore(MEMORY_DATABASE, { log: createLogger({ level: 'silent' }) });
    await expect(store.ping(100)).resolves.toBeUndefined();
    await store.close();
    await expect(store.ping(100)).rejects.toThrow();
  });
});
