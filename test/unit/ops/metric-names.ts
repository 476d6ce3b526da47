/**
 * The metrics the bot exposes on /metrics, as the Grafana dashboard (ops/grafana/dashboards/) may
 * query them: name, type and labels. The bot's own come from src/metrics.ts; prom-client's
 * defaults and Prometheus's `up` are listed here.
 */
import { METRIC_NAMES, Metrics } from '../../../src/metrics.ts';

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface MetricShape {
  type: MetricType;
  labels: readonly string[];
}

/** The bot's own metrics, read from src/metrics.ts (the one place that declares them). */
function botMetrics(): Record<string, MetricShape> {
  const registry = new Metrics({ defaultMetrics: false }).registry;
  return Object.fromEntries(
    METRIC_NAMES.map((name) => {
      const metric = registry.getSingleMetric(name) as unknown as { labelNames?: readonly string[]; constructor: { name: string } } | undefined;
      if (!metric) throw new Error(`${name} is in METRIC_NAMES but not registered`);
      return [name, { type: metric.constructor.name.toLowerCase() as MetricType, labels: metric.labelNames ?? [] }];
    }),
  );
}

export const METRICS: Readonly<Record<string, MetricShape>> = {
  ...botMetrics(),

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
