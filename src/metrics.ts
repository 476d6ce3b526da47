/**
 * Every metric the bot exports on GET /metrics (Prometheus text format, prom-client), declared in
 * this one module. One Metrics object (with its own Registry) per app instance: tests start
 * several bots in one process. The composition root (src/app.ts) creates it and hands it to the
 * engine, the provider clients and the platforms; nothing imports a global one.
 *
 * Labels are bounded: platform, model (a catalogue key), provider, outcome, kind, a catalogue
 * error code (src/errors.ts), and `key`, the provider client's keyId (a short hash of the API
 * key, never the key). Never a user id, a prompt, a job id or a URL. See docs/architecture.md
 * "Metrics and readiness".
 */
import { constants, PerformanceObserver, type PerformanceNodeEntry } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { JobRecord } from './engine/job.ts';
import type { ModelSpec } from './engine/models.ts';
import type { ProviderAttempt, ProviderMetrics } from './providers/types.ts';

/** The names a dashboard and alerts may rely on (docs/architecture.md "Metrics and readiness"). */
export const METRIC_NAMES = [
  'imagine_jobs_started_total',
  'imagine_jobs_finished_total',
  'imagine_job_duration_seconds',
  'imagine_provider_request_duration_seconds',
  'imagine_provider_requests_total',
  'imagine_provider_rate_limited_total',
  'imagine_provider_errors_total',
  'imagine_rate_budget_wait_seconds',
  'imagine_refusals_total',
  'imagine_spend_usd_total',
  'imagine_jobs_in_flight',
  'imagine_deliveries_failed_total',
  'imagine_ack_latency_seconds',
] as const;
export type MetricName = (typeof METRIC_NAMES)[number];

/** A job runs 7–30 s per image (docs/providers.md), up to JOB_DEADLINE_SECONDS (600 s by default). */
const JOB_DURATION_BUCKETS = [1, 2.5, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600];
/** One provider HTTP request: milliseconds to the 30 s timeout. */
const REQUEST_DURATION_BUCKETS = [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** A wait for the per-key rate budget: none usually, seconds under a burst (docs/rate-budget.md). */
const BUDGET_WAIT_BUCKETS = [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Discord and Slack both want the acknowledgement within 3 s (docs/discord.md, docs/slack.md). */
const ACK_LATENCY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5];

/** How a job ended: its terminal state (a canceled job is neither a success nor a failure). */
export type JobOutcome = 'succeeded' | 'failed' | 'canceled';
export class Metrics implements ProviderMetrics {
  readonly registry = new Registry();

  readonly jobsStarted = new Counter({
    name: 'imagine_jobs_started_total',
    help: 'Jobs admitted and started by this process.',
    labelNames: ['platform', 'model', 'provider'] as const,
    registers: [this.registry],
  });
  readonly jobsFinished = new Counter({
    name: 'imagine_jobs_finished_total',
    help: 'Jobs that reached a terminal state in this process (succeeded: at least one image).',
    labelNames: ['platform', 'model', 'provider', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly jobDuration = new Histogram({
    name: 'imagine_job_duration_seconds',
    help: 'From a job\'s creation to its terminal state.',
    labelNames: ['platform', 'model', 'outcome'] as const,
    buckets: JOB_DURATION_BUCKETS,
    registers: [this.registry],
  });
  readonly providerRequestDuration = new Histogram({
    name: 'imagine_provider_request_duration_seconds',
    help: 'One HTTP request to a provider (each attempt), answered or failed.',
    labelNames: ['provider', 'kind'] as const,
    buckets: REQUEST_DURATION_BUCKETS,
    registers: [this.registry],
  });
  readonly providerRequests = new Counter({
    name: 'imagine_provider_requests_total',
    help: 'HTTP requests sent to a provider (each attempt), by API key id.',
    labelNames: ['provider', 'key', 'kind'] as const,
    registers: [this.registry],
  });
  readonly providerRateLimited = new Counter({
    name: 'imagine_provider_rate_limited_total',
    help: 'Provider answers with HTTP 429, by API key id.',
    labelNames: ['provider', 'key'] as const,
    registers: [this.registry],
  });
  readonly providerErrors = new Counter({
    name: 'imagine_provider_errors_total',
    help: 'Provider failures by catalogue code: failed requests (each attempt) and tasks the provider reported failed.',
    labelNames: ['provider', 'code'] as const,
    registers: [this.registry],
  });
  readonly rateBudgetWait = new Histogram({
    name: 'imagine_rate_budget_wait_seconds',
    help: 'Time a provider request waited for its API key\'s rate budget.',
    labelNames: ['provider', 'key'] as const,
    buckets: BUDGET_WAIT_BUCKETS,
    registers: [this.registry],
  });
  readonly refusals = new Counter({
    name: 'imagine_refusals_total',
    help: 'Requests answered with an error sentence, by catalogue code (QUOTA_EXCEEDED, INVALID_REQUEST, ...; INTERNAL: unexplained failures).',
    labelNames: ['platform', 'code'] as const,
    registers: [this.registry],
  });
  readonly spendUsd = new Counter({
    name: 'imagine_spend_usd_total',
    help: 'Money spent at the providers (their reported costs), counted when a job settles.',
    labelNames: ['provider', 'model'] as const,
    registers: [this.registry],
  });
  readonly jobsInFlight = new Gauge({
    name: 'imagine_jobs_in_flight',
    help: 'Jobs this process is running (or delivering) now.',
    registers: [this.registry],
  });
  readonly deliveriesFailed = new Counter({
    name: 'imagine_deliveries_failed_total',
    help: 'Finished jobs whose delivery the engine gave up on (every retry failed; the next start tries again).',
    labelNames: ['platform'] as const,
    registers: [this.registry],
  });
  readonly ackLatency = new Histogram({
    name: 'imagine_ack_latency_seconds',
    help: 'From an interaction\'s receipt to its acknowledgement (Discord: the first response; Slack: ack()).',
    labelNames: ['platform'] as const,
    buckets: ACK_LATENCY_BUCKETS,
    registers: [this.registry],
  });

  /** Our `nodejs_gc_duration_seconds` observer (see gcDurations), disconnected by close(). */
  readonly #gc: PerformanceObserver | undefined;

  /** `defaultMetrics`: prom-client's process metrics (CPU, memory, event-loop lag, GC...). */
  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry });
      this.#gc = gcDurations(this.registry);
    }
  }

  /**
   * Stops observing garbage collections for this registry (the app's stop). prom-client's own
   * observers (its GC histogram, its event-loop monitor) cannot be reached and keep running.
   */
  close(): void {
    this.#gc?.disconnect();
  }

  /** The Content-Type of `text()`. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition in Prometheus text format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** A job reached its terminal state in this process: counted, and its duration observed. */
  jobFinished(job: JobRecord, model: ModelSpec | undefined): void {
    const outcome: JobOutcome = job.state === 'succeeded' || job.state === 'canceled' ? job.state : 'failed';
    const { platform } = job.request.requester;
    const modelKey = model?.key ?? job.request.model;
    this.jobsFinished.inc({ platform, model: modelKey, provider: model?.provider ?? 'none', outcome });
    const seconds = ((job.finishedAt ?? job.updatedAt) - job.createdAt) / 1000;
    if (seconds >= 0) this.jobDuration.observe({ platform, model: modelKey, outcome }, seconds);
  }

  /** One provider HTTP attempt (ProviderMetrics: the provider clients call it). */
  providerAttempt(a: ProviderAttempt): void {
    this.providerRequests.inc({ provider: a.provider, key: a.keyId, kind: a.kind });
    this.providerRequestDuration.observe({ provider: a.provider, kind: a.kind }, a.seconds);
    if (a.status === 429) this.providerRateLimited.inc({ provider: a.provider, key: a.keyId });
    if (a.errorCode !== undefined) this.providerErrors.inc({ provider: a.provider, code: a.errorCode });
  }
}

/** prom-client's name, help, buckets and label for its GC histogram (lib/metrics/gc.js), kept so dashboards need no change. */
export const GC_DURATION_METRIC = 'nodejs_gc_duration_seconds';
const GC_DURATION_BUCKETS = [0.001, 0.01, 0.1, 1, 2, 5];
const GC_KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
  // V8's minor mark-sweep (GCType kGCTypeMinorMarkSweep = 2, a young-generation collection like a
  // scavenge, used when V8 runs with --minor-ms), for which Node has no constant.
  2: 'minor',
};

/**
 * Replaces prom-client's `nodejs_gc_duration_seconds` with one that counts every collection.
 * prom-client's (15.1.3) observes only `list.getEntries()[0]`, the first entry of
 * each batch its PerformanceObserver is handed, and a busy event loop hands over several
 * collections at once: under load the histogram lost collections and their time (a script
 * allocating in busy turns counted 28 of 35 collections there, 160 of 176 ms).
 * https://nodejs.org/api/perf_hooks.html#class-performanceobserver: the callback receives a
 * PerformanceObserverEntryList, which may hold several entries. prom-client's observer still runs
 * (it cannot be reached to stop it), into a histogram no registry shows. collectDefaultMetrics is
 * given no `prefix` or `labels`: with them, the name removed here and the labels would differ.
 */
function gcDurations(registry: Registry): PerformanceObserver {
  registry.removeSingleMetric(GC_DURATION_METRIC);
  const histogram = new Histogram({
    name: GC_DURATION_METRIC,
    help: 'Garbage collection duration by kind, one of major, minor, incremental or weakcb.',
    labelNames: ['kind'] as const,
    buckets: GC_DURATION_BUCKETS,
    registers: [registry],
  });
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      // A gc entry's detail: { kind, flags } (https://nodejs.org/api/perf_hooks.html#garbage-collection-gc-details).
      const kind = GC_KINDS[(entry as PerformanceNodeEntry).detail?.kind ?? -1];
      if (kind) histogram.observe({ kind }, entry.duration / 1000);
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return observer;
}
