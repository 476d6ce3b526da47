/**
 * The environment, validated once at boot. This is the only module that reads process.env
 * (an ESLint rule enforces it). Names are a public contract: see README "Configuration".
 */
import { z } from 'zod';
import type { OperatorCeilings } from './engine/governance/api.ts';
import type { ProviderName } from './providers/types.ts';

const emptyToUndefined = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);
const optionalString = z.preprocess(emptyToUndefined, z.string().trim().min(1).optional());
const httpUrl = () => z.preprocess(emptyToUndefined, z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional());
/** An http(s) URL; unset or empty means `def` (so the documented default is declared here only). */
const url = (def: string) => httpUrl().transform((v) => v ?? def);
const int = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  z.preprocess(emptyToUndefined, z.coerce.number().int().min(min).max(max).default(def));
/** true/false (also 1/0, yes/no); unset or empty means `def`. */
const bool = (def: boolean) =>
  z.preprocess(
    emptyToUndefined,
    z
      .string()
      .trim()
      .toLowerCase()
      .regex(/^(true|false|1|0|yes|no)$/, 'must be true or false')
      .transform((v) => ['true', '1', 'yes'].includes(v))
      .optional()
      .transform((v) => v ?? def),
  );
const list = z.preprocess(
  (v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : (v ?? [])),
  z.array(z.string()),
);

export const configSchema = z
  .object({
    DISCORD_TOKEN: optionalString,
    DISCORD_APPLICATION_ID: optionalString,
    DISCORD_PUBLIC_KEY: optionalString,
    DISCORD_GUILD_ID: optionalString,
    DISCORD_API_URL: url('https://discord.com/api'),
    /** Gateway shards this process runs: `auto` (Discord's recommended count) or N (shards 0..N-1 of N). docs/discord.md "Sharding". */
    DISCORD_SHARDS: z.preprocess(
      emptyToUndefined,
      z
        .string()
        .trim()
        .regex(/^(auto|[1-9]\d*)$/i, 'must be "auto" or a whole number of shards (1 or more)')
        .transform((v): 'auto' | number => (v.toLowerCase() === 'auto' ? 'auto' : Number(v)))
        .refine((v) => v === 'auto' || Number.isSafeInteger(v), 'is too large')
        .default('auto'),
    ),

    SLACK_BOT_TOKEN: optionalString,
    SLACK_SIGNING_SECRET: optionalString,
    SLACK_APP_TOKEN: optionalString,
    SLACK_API_URL: url('https://slack.com/api/'),
    /** Slack user ids who may use the admin command besides the workspace's admins and owners (docs/governance.md). */
    SLACK_ADMIN_USERS: list,

    RUNBASE_API_KEY: optionalString,
    RUNBASE_API_URL: url('https://runbase.net/api/v1'),
    RUNBLOB_API_KEY: optionalString,
    RUNBLOB_API_URL: url('https://platform.runblob.io'),

    DEFAULT_MODEL: optionalString,
    STORE_URL: z.preprocess(
      emptyToUndefined,
      z
        .string()
        .regex(/^(sqlite|redis|rediss):\/\//, 'must start with sqlite://, redis:// or rediss://')
        .default('sqlite://data/imagine.sqlite'),
    ),
    DATA_DIR: z.preprocess(emptyToUndefined, z.string().default('data')),

    QUOTA_DAILY_UNITS: int(20, 0),
    QUOTA_COST_1K: int(1, 0),
    QUOTA_COST_2K: int(2, 0),
    QUOTA_COST_4K: int(4, 0),
    QUOTA_EXEMPT_USERS: list,
    /** The most units per day a server's admins may give anyone (docs/governance.md "Two levels of authority"). */
    QUOTA_MAX_DAILY_UNITS: int(100, 0),
    /** Whether a server's admins may give a role or member no daily limit. */
    QUOTA_ALLOW_UNLIMITED: bool(false),
    SPEND_CAP_DAILY_USD: z.preprocess(emptyToUndefined, z.coerce.number().positive().optional()),
    /** The highest daily USD cap a server's admins may set (never above SPEND_CAP_DAILY_USD). */
    SERVER_SPEND_CAP_MAX_USD: z.preprocess(emptyToUndefined, z.coerce.number().positive().optional()),
    JOB_DEADLINE_SECONDS: int(600, 10),

    FETCH_ALLOW_HOSTS: list,

    PORT: int(3000, 0, 65535),
    PUBLIC_URL: httpUrl(),
    // Sent as `Authorization: Bearer <token>`: the b64token characters of RFC 6750 section 2.1.
    METRICS_TOKEN: z.preprocess(
      emptyToUndefined,
      z
        .string()
        .trim()
        .regex(/^[A-Za-z0-9\-._~+/]+=*$/, 'must be a bearer token: letters, digits and - . _ ~ + / (RFC 6750), no spaces')
        .optional(),
    ),
    LOG_LEVEL: z.preprocess(
      emptyToUndefined,
      z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    ),
  });

/**
 * Rules that involve several variables. Checked on the raw environment so that they are reported
 * together with the per-variable problems (zod skips refinements once a field is invalid).
 */
function crossFieldProblems(env: Record<string, string | undefined>): string[] {
  const set = (name: string) => (env[name] ?? '').trim() !== '';
  const problems: string[] = [];
  if (set('DISCORD_TOKEN') && !set('DISCORD_APPLICATION_ID'))
    problems.push('DISCORD_APPLICATION_ID: is required when DISCORD_TOKEN is set');
  if (set('SLACK_BOT_TOKEN') && !set('SLACK_SIGNING_SECRET') && !set('SLACK_APP_TOKEN'))
    problems.push('SLACK_SIGNING_SECRET: is required when SLACK_BOT_TOKEN is set (or set SLACK_APP_TOKEN for Socket Mode)');
  if (set('DISCORD_PUBLIC_KEY') && !/^[0-9a-fA-F]{64}$/.test((env.DISCORD_PUBLIC_KEY ?? '').trim()))
    problems.push('DISCORD_PUBLIC_KEY: must be the 64 hexadecimal characters of the application\'s Public Key (developer portal, General Information)');
  if (set('RUNBASE_API_KEY') && !(env.RUNBASE_API_KEY ?? '').trim().startsWith('sk-'))
    problems.push('RUNBASE_API_KEY: Runbase keys start with "sk-"');
  // A server's default (QUOTA_DAILY_UNITS) must itself be within the ceiling servers choose under.
  const daily = Number((env.QUOTA_DAILY_UNITS ?? '').trim() || 20);
  const max = Number((env.QUOTA_MAX_DAILY_UNITS ?? '').trim() || 100);
  if (Number.isFinite(daily) && Number.isFinite(max) && max < daily)
    problems.push(`QUOTA_MAX_DAILY_UNITS: must be at least QUOTA_DAILY_UNITS (${daily}), got ${max}`);
  return problems;
}

/** The operator's ceilings (docs/governance.md) from the Config. */
export function ceilingsOf(c: Config): OperatorCeilings {
  return {
    defaultDailyUnits: c.QUOTA_DAILY_UNITS,
    maxDailyUnits: c.QUOTA_MAX_DAILY_UNITS,
    allowUnlimited: c.QUOTA_ALLOW_UNLIMITED,
    maxServerSpendCapUsd: c.SERVER_SPEND_CAP_MAX_USD,
    globalSpendCapUsd: c.SPEND_CAP_DAILY_USD,
  };
}

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Parses an environment (defaults to process.env); throws ConfigError listing every problem. */
export function parseConfig(env: Record<string, string | undefined> = process.env): Config {
  const result = configSchema.safeParse(env);
  const problems = [
    ...(result.success ? [] : result.error.issues.map((i) => `${i.path.join('.') || '(environment)'}: ${i.message}`)),
    ...crossFieldProblems(env),
  ];
  if (result.success && problems.length === 0) return result.data;
  throw new ConfigError(problems);
}

/** Loads `.env` from the working directory when present (real environment variables win). */
export function loadDotEnv(path = '.env'): void {
  try {
    process.loadEnvFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

export function configuredProviders(c: Config): Set<ProviderName> {
  const s = new Set<ProviderName>();
  if (c.RUNBASE_API_KEY) s.add('runbase');
  if (c.RUNBLOB_API_KEY) s.add('runblob');
  return s;
}

/** Every secret in the config, for log redaction tests and scrubbing. */
export function secretsOf(c: Config): string[] {
  return [c.DISCORD_TOKEN, c.SLACK_BOT_TOKEN, c.SLACK_SIGNING_SECRET, c.SLACK_APP_TOKEN, c.RUNBASE_API_KEY, c.RUNBLOB_API_KEY, c.METRICS_TOKEN].filter(
    (s): s is string => !!s,
  );
}
