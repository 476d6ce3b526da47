/**
 * The metrics the bot exposes on /metrics, as the Grafana dashboard (ops/grafana/dashboards/) may
 * query them: name, type and labels. The metrics module is being written in parallel; until it
 * exists this list is the one place that names them (for the ops tests), and it should then be
 * exported from that module and imported here.
 */
export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface MetricShape {
  type: MetricType;
  labels: readonly string[];
}

export const METRICS: Readonly<Record<string, MetricShape>> = {
  imagine_jobs_started_total: { type: 'counter', labels: ['platform', 'model', 'provider'] },
  imagine_jobs_finished_total: { type: 'counter', labels: ['platform', 'model', 'provider', 'outcome'] },
  imagine_job_duration_seconds: { type: 'histogram', labels: ['platform', 'model', 'outcome'] },
  imagine_provider_request_duration_seconds: { type: 'histogram', labels: ['provider', 'kind'] },
  imagine_provider_requests_total: { type: 'counter', labels: ['provider', 'key', 'kind'] },
  imagine_provider_rate_limited_total: { type: 'counter', labels: ['provider', 'key'] },
  imagine_provider_errors_total: { type: 'counter', labels: ['provider', 'code'] },
  imagine_rate_budget_wait_seconds: { type: 'histogram', labels: ['provider', 'key'] },
  imagine_refusals_total: { type: 'counter', labels: ['platform', 'code'] },
  imagine_spend_usd_total: { type: 'counter', labels: ['provider', 'model'] },
  imagine_jobs_in_flight: { type: 'gauge', labels: [] },
  imagine_deliveries_failed_total: { type: 'counter', labels: ['platform'] },
  imagine_ack_latency_seconds: { type: 'histogram', labels: ['platform'] },

  // prom-client's default metrics (collectDefaultMetrics), those the dashboard uses:
  // https://github.com/siimon/prom-client#default-metrics
  process_cpu_seconds_total: { type: 'counter', labels: [] },
  process_resident_memory_bytes: { type: 'gauge', labels: [] },
  nodejs_eventloop_lag_p99_seconds: { type: 'gauge', labels: [] },

  // Written by Prometheus itself for every target, 1 when the last scrape succeeded:
  // https://prometheus.io/docs/concepts/jobs_instances/#automatically-generated-labels-and-time-series
  up: { type: 'gauge', labels: [] },
};

/** Labels Prometheus attaches to every scraped series (same page as `up` above). */
export const TARGET_LABELS: readonly string[] = ['job', 'instance'];

/** The series a histogram exposes: `_bucket` (with `le`), `_sum` and `_count`. */
export const HISTOGRAM_SUFFIXES: readonly string[] = ['_bucket', '_sum', '_count'];
