/**
 * Reading a /metrics scrape in tests with a real Prometheus text-format parser
 * (parse-prometheus-text-format: the most used one on npm, a port of the Prometheus Python
 * client's sample parser with prom2json's output), so a malformed exposition fails the test, not
 * only a wrong number.
 *
 * That parser folds a histogram's series into one object and drops their labels, `_count` and
 * `_sum` when the histogram has labels other than `le`. So histograms are read a second time with
 * their `# TYPE`/`# HELP` lines left out: each `_bucket`/`_count`/`_sum` line is then an untyped
 * sample with its labels and value, which is exactly what the text says.
 */
import parsePrometheusTextFormat, { type PromFamily, type PromSample } from 'parse-prometheus-text-format';

export type { PromFamily, PromSample };

export interface Scrape {
  /** Every family by name, as declared (HELP, TYPE). */
  families: Map<string, PromFamily>;
  /** Sum of a counter's or gauge's samples whose labels include `labels`. */
  sum(name: string, labels?: Record<string, string>): number;
  /** Sum of a histogram's observation counts (its `_count` series) whose labels include `labels`. */
  count(name: string, labels?: Record<string, string>): number;
  /** Every sample of a counter or gauge, or of a histogram's `_count`/`_sum`/`_bucket` series. */
  samples(name: string): PromSample[];
}

const matches = (s: PromSample, labels: Record<string, string>) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v);

export function parseScrape(text: string): Scrape {
  const declared = parsePrometheusTextFormat(text);
  const families = new Map(declared.map((f) => [f.name, f]));
  const histograms = new Set(declared.filter((f) => f.type === 'HISTOGRAM').map((f) => f.name));
  const untyped = text
    .split('\n')
    .filter((line) => !/^# (TYPE|HELP) (\S+)/.test(line) || !histograms.has(/^# \S+ (\S+)/.exec(line)?.[1] ?? ''))
    .join('\n');
  const series = new Map<string, PromSample[]>();
  for (const f of parsePrometheusTextFormat(untyped)) series.set(f.name, [...(series.get(f.name) ?? []), ...f.metrics]);
  const samples = (name: string) => series.get(name) ?? [];
  const total = (list: PromSample[], labels: Record<string, string>) =>
    list.filter((s) => matches(s, labels)).reduce((n, s) => n + Number(s.value ?? 0), 0);
  return {
    families,
    samples,
    sum: (name, labels = {}) => total(samples(name), labels),
    count: (name, labels = {}) => total(samples(`${name}_count`), labels),
  };
}
