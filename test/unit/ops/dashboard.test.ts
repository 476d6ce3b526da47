/**
 * The Grafana dashboard (ops/grafana/dashboards/imagine.json): every query names metrics the bot
 * exposes (metric-names.ts) and labels those metrics have, so a renamed metric or a typo shows
 * up here rather than as an empty panel.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { HISTOGRAM_SUFFIXES, METRICS, TARGET_LABELS } from './metric-names.ts';

type Dict = Record<string, unknown>;
const isDict = (v: unknown): v is Dict => typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** The labels a series name has (histograms: `_bucket` also has `le`); undefined when unknown. */
function labelsOf(series: string): Set<string> | undefined {
  const direct = METRICS[series];
  if (direct) return new Set([...direct.labels, ...TARGET_LABELS]);
  for (const suffix of HISTOGRAM_SUFFIXES) {
    const base = METRICS[series.slice(0, -suffix.length)];
    if (series.endsWith(suffix) && base?.type === 'histogram')
      return new Set([...base.labels, ...TARGET_LABELS, ...(suffix === '_bucket' ? ['le'] : [])]);
  }
  return undefined;
}

// PromQL: https://prometheus.io/docs/prometheus/latest/querying/basics/
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset']);
const FUNCTIONS = new Set(['sum', 'avg', 'min', 'max', 'count', 'rate', 'increase', 'histogram_quantile']);

/** Problems in one PromQL expression; legend: the panel's legendFormat, whose {{labels}} must exist. */
function queryProblems(expr: string, legend = ''): string[] {
  const problems: string[] = [];
  // Label values and range durations ([5m], [$__rate_interval]) name nothing.
  let rest = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\[[^\]]*\]/g, '');
  const grouping: string[] = [];
  rest = rest.replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g, (_m, labels: string) => {
    grouping.push(...labels.split(',').map((l) => l.trim()).filter(Boolean));
    return ' ';
  });
  const available = new Set<string>();
  let count = 0;
  for (const m of rest.matchAll(/(?<![\w.])([A-Za-z_:][\w:]*)\s*(\{[^}]*\})?\s*(\()?/g)) {
    const [, name = '', matchers, call] = m;
    if (call) {
      if (!FUNCTIONS.has(name)) problems.push(`unknown function ${name}`);
      continue;
    }
    if (KEYWORDS.has(name)) continue;
    count += 1;
    const labels = labelsOf(name);
    if (!labels) {
      problems.push(`unknown metric ${name}`);
      continue;
    }
    for (const l of labels) available.add(l);
    for (const [, label = ''] of (matchers ?? '').matchAll(/([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)/g))
      if (!labels.has(label)) problems.push(`${name} has no label ${label}`);
  }
  if (count === 0) problems.push('no metric');
  for (const l of grouping) if (!available.has(l)) problems.push(`no metric here has the label ${l} (by)`);
  // After an aggregation only the grouping labels are left; otherwise the series' own.
  const legendLabels = grouping.length > 0 ? new Set(grouping) : available;
  for (const [, l = ''] of legend.matchAll(/\{\{\s*(\w+)\s*\}\}/g))
    if (!legendLabels.has(l)) problems.push(`legend {{${l}}}: the result has no such label`);
  return problems;
}

const dashboard: unknown = JSON.parse(readFileSync(new URL('../../../ops/grafana/dashboards/imagine.json', import.meta.url), 'utf8'));
const board = isDict(dashboard) ? dashboard : {};

/** Every panel, including those nested in collapsed rows. */
function panelsOf(container: Dict): Dict[] {
  return list(container.panels)
    .filter(isDict)
    .flatMap((p) => [p, ...panelsOf(p)]);
}
const panels = panelsOf(board);
const targets = panels.flatMap((p) => list(p.targets).filter(isDict).map((t) => ({ panel: String(p.title), expr: String(t.expr), legend: String(t.legendFormat ?? '') })));
const variables = list(isDict(board.templating) ? board.templating.list : []).filter(isDict);

describe('ops/grafana/dashboards/imagine.json', () => {
  it('queries only metrics the bot exposes, with labels they have', () => {
    expect(targets.length).toBeGreaterThan(10);
    const problems = targets.flatMap((t) => queryProblems(t.expr, t.legend).map((p) => `${t.panel}: ${p}`));
    expect(problems).toEqual([]);
  });

  it('shows every imagine_ metric somewhere', () => {
    const used = targets.map((t) => t.expr).join('\n');
    const unused = Object.keys(METRICS).filter((name) => !new RegExp(`\\b${name}(${HISTOGRAM_SUFFIXES.join('|')})?\\b`).test(used));
    expect(unused).toEqual([]);
  });

  it('the query check catches a misspelt metric, an unknown label, a grouping or legend label that is not there', () => {
    expect(queryProblems('sum(rate(imagine_jobs_finishd_total[5m]))')).toEqual(['unknown metric imagine_jobs_finishd_total']);
    expect(queryProblems('imagine_refusals_total{model="pro"}')).toEqual(['imagine_refusals_total has no label model']);
    expect(queryProblems('sum by (model) (rate(imagine_refusals_total[5m]))')).toEqual(['no metric here has the label model (by)']);
    expect(queryProblems('sum by (code) (rate(imagine_refusals_total[5m]))', '{{platform}}')).toEqual(['legend {{platform}}: the result has no such label']);
    expect(queryProblems('histogram_quantile(0.9, sum by (le) (rate(imagine_spend_usd_total_bucket[5m])))')).toEqual([
      'unknown metric imagine_spend_usd_total_bucket',
      'no metric here has the label le (by)',
    ]);
    expect(queryProblems('histogram_quantile(0.9, sum by (platform, le) (rate(imagine_ack_latency_seconds_bucket{job="imagine"}[$__rate_interval])))', '{{platform}}')).toEqual([]);
  });

  it('reads every panel from the data source variable, which is a Prometheus one', () => {
    const datasource = variables.find((v) => v.type === 'datasource');
    expect(datasource?.query).toBe('prometheus');
    for (const p of panels.filter((p) => p.type !== 'row')) expect(p.datasource, String(p.title)).toEqual({ type: 'prometheus', uid: `\${${String(datasource?.name)}}` });
  });

  it('its instance variable lists the scraped bots', () => {
    const instance = variables.find((v) => v.name === 'instance');
    const query = String(isDict(instance?.query) ? instance.query.query : instance?.query);
    const m = /^label_values\((.+),\s*(\w+)\)$/.exec(query);
    expect(m).not.toBeNull();
    expect(queryProblems(m?.[1] ?? '')).toEqual([]);
    expect(labelsOf('up')?.has(m?.[2] ?? '')).toBe(true);
  });

  it('has unique panel ids and a stable uid (links survive re-provisioning)', () => {
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(board.uid).toBe('imagine-bot');
  });
});
