/**
 * `npm run imagine -- "prompt" --model … --ar 16:9 --res 2K --n 2 --ref path-or-url [--creativity 0.5]`
 *
 * One job from the command line, through the same engine as the bot (same validation, quotas,
 * store, providers): the operator's quickest check of their API keys. Shows a live progress line
 * on stderr, saves the images to ./out/<jobId>-<n>.<ext> and prints their paths on stdout.
 *
 * Exit codes: 0 images saved (some may have failed: see stderr); 1 the job or the setup failed
 * (configuration, quota, references, provider); 2 bad flags or options the model cannot honour (usage).
 */
import { copyFile, mkdir, stat } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { basename, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { DEFAULT_COUNT, DEFAULT_RATIO, DEFAULT_RATIO_WITH_REFERENCES, DEFAULT_RESOLUTION } from '../../commands/imagine.ts';
import { ConfigError, configuredProviders, loadDotEnv, parseConfig, secretsOf, type Config } from '../config.ts';
import { engineSettingsOf } from '../app.ts';
import { createEngine, type Engine } from '../engine/engine.ts';
import { ValidationError } from '../engine/errors.ts';
import type { Deliverer, JobRecord, ProgressEvent } from '../engine/job.ts';
import { ALL_RATIOS, findModel, MODEL_CATALOG, RESOLUTIONS, type Ratio, type Resolution } from '../engine/models.ts';
import { openStore } from '../engine/open-store.ts';
import { Quotas } from '../engine/quota.ts';
import { MAX_IMAGES_PER_JOB, type ReferenceInput, type Requester } from '../engine/request.ts';
import type { Store } from '../engine/store.ts';
import { BotError } from '../errors.ts';
import { createLogger, type Logger } from '../log.ts';
import { createProviderClients } from '../providers/index.ts';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
/** Where images are saved, relative to the working directory. */
export const OUT_DIR = 'out';

export const USAGE = `Usage: npm run imagine -- "<prompt>" [options]

Options:
  --model <name>        model key or alias (${MODEL_CATALOG.map((m) => m.key).join(', ')}); default: DEFAULT_MODEL or the first configured
  --ar <ratio>          aspect ratio: auto, 1:1, 16:9, 9:16, 4:3, 3:2, … (default ${DEFAULT_RATIO}; ${DEFAULT_RATIO_WITH_REFERENCES} with references)
  --res <1K|2K|4K>      resolution (default ${DEFAULT_RESOLUTION})
  --n <1-4>             number of images (default ${DEFAULT_COUNT})
  --ref <path-or-url>   reference image, a local file or an https:// link; repeatable
  --creativity <0-1>    how free the model is (RunBlob models only)
  -h, --help            show this help

Images are saved to ./${OUT_DIR}/<jobId>-<n>.<ext>; their paths are printed on stdout.
Configuration comes from the environment or .env (see .env.example).`;

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface CliArgs {
  prompt: string;
  model?: string;
  ratio?: string;
  resolution?: string;
  count?: number;
  creativity?: number;
  refs: string[];
  help: boolean;
}

/**
 * Parses argv (without node and the script). Throws UsageError for anything parseArgs refuses and
 * for values no model accepts, before any configuration is read: a typo gets the usage, not a
 * configuration error. What only the chosen model refuses (8:1 on Pro) is the engine's to say.
 */
export function parseCliArgs(argv: readonly string[]): CliArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: true,
      options: {
        model: { type: 'string', short: 'm' },
        ar: { type: 'string' },
        res: { type: 'string' },
        n: { type: 'string' },
        ref: { type: 'string', multiple: true },
        creativity: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const { values, positionals } = parsed;
  const args: CliArgs = { prompt: positionals.join(' ').trim(), refs: values.ref ?? [], help: values.help ?? false };
  if (args.help) return args;
  if (!args.prompt) throw new UsageError('A prompt is required.');
  if (values.model !== undefined) {
    if (!findModel(MODEL_CATALOG, values.model)) {
      throw new UsageError(`--model: unknown model "${values.model}" (one of ${MODEL_CATALOG.map((m) => m.key).join(', ')}).`);
    }
    args.model = values.model;
  }
  if (values.ar !== undefined) {
    if (!(ALL_RATIOS as readonly string[]).includes(values.ar)) throw new UsageError(`--ar: "${values.ar}" is not an aspect ratio (${ALL_RATIOS.join(', ')}).`);
    args.ratio = values.ar;
  }
  if (values.res !== undefined) {
    const res = values.res.toUpperCase();
    if (!(RESOLUTIONS as readonly string[]).includes(res)) throw new UsageError(`--res must be one of ${RESOLUTIONS.join(', ')} (got "${values.res}").`);
    args.resolution = res;
  }
  if (values.n !== undefined) {
    const n = /^\d+$/.test(values.n) ? Number(values.n) : NaN;
    if (!(n >= 1 && n <= MAX_IMAGES_PER_JOB)) throw new UsageError(`--n must be a whole number from 1 to ${MAX_IMAGES_PER_JOB} (got "${values.n}").`);
    args.count = n;
  }
  if (values.creativity !== undefined) {
    const c = values.creativity.trim() === '' ? NaN : Number(values.creativity);
    if (!(c >= 0 && c <= 1)) throw new UsageError(`--creativity must be a number from 0 to 1 (got "${values.creativity}").`);
    args.creativity = c;
  }
  return args;
}

/** `--ref` values: links stay links (fetched through the SSRF guard), anything else is a local file. */
export async function referencesFrom(refs: readonly string[], cwd: string): Promise<ReferenceInput[]> {
  const out: ReferenceInput[] = [];
  for (const [i, ref] of refs.entries()) {
    if (/^https?:\/\//i.test(ref)) {
      out.push({ kind: 'url', url: ref });
      continue;
    }
    const path = resolve(cwd, ref);
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) throw new UsageError(`--ref ${i + 1}: "${ref}" is neither a file nor an http(s) link.`);
    out.push({ kind: 'file', path, name: basename(path) });
  }
  return out;
}

const PHASE_LABEL: Record<ProgressEvent['phase'], string> = {
  queued: 'queued',
  generating: 'generating',
  downloading: 'downloading',
  done: 'done',
};

/** The 'cli' deliverer: a live progress line on stderr, then the images copied to ./out. */
export function cliDeliverer(opts: { cwd: string; stderr: NodeJS.WriteStream; stdout: NodeJS.WritableStream }): Deliverer & {
  saved: string[];
  endLine(): void;
} {
  const tty = opts.stderr.isTTY === true;
  let lineOpen = false;
  const d = {
    saved: [] as string[],
    endLine() {
      if (lineOpen) opts.stderr.write('\n');
      lineOpen = false;
    },
    progress(_job: JobRecord, e: ProgressEvent) {
      const line = `${PHASE_LABEL[e.phase]} · ${e.done}/${e.total} images · ${(e.elapsedMs / 1000).toFixed(0)} s`;
      if (tty) {
        opts.stderr.write(`\r${line}\x1b[K`);
        lineOpen = true;
      } else if (e.changed) {
        opts.stderr.write(`${line}\n`);
      }
    },
    async deliver(job: JobRecord) {
      d.endLine();
      const outDir = join(opts.cwd, OUT_DIR);
      await mkdir(outDir, { recursive: true });
      for (const task of job.tasks) {
        if (task.image) {
          const ext = task.image.path.split('.').pop() ?? 'png';
          const dest = join(outDir, `${job.id}-${task.index + 1}.${ext}`);
          await copyFile(task.image.path, dest);
          d.saved.push(dest);
          opts.stdout.write(`${relative(opts.cwd, dest) || dest}\n`);
        } else if (task.error && job.state === 'succeeded') {
          opts.stderr.write(`image ${task.index + 1} failed: ${task.error.userMessage}\n`);
        }
      }
    },
  };
  return d;
}

/** The quota bucket of the person at the terminal (containers may have no passwd entry). */
function operatorName(): string {
  try {
    return userInfo().username || 'operator';
  } catch {
    return `uid-${process.getuid?.() ?? 'unknown'}`;
  }
}

/** Runs the CLI; returns the exit code. Everything it opens is closed before it returns. */
export async function runCli(argv: readonly string[], io: { cwd?: string; stdout?: NodeJS.WritableStream; stderr?: NodeJS.WriteStream } = {}): Promise<number> {
  const cwd = io.cwd ?? process.cwd();
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  let args: CliArgs;
  let references: ReferenceInput[];
  try {
    args = parseCliArgs(argv);
    if (args.help) {
      stdout.write(`${USAGE}\n`);
      return EXIT_OK;
    }
    references = await referencesFrom(args.refs, cwd);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    stderr.write(`${err.message}\n\n${USAGE}\n`);
    return EXIT_USAGE;
  }

  loadDotEnv(join(cwd, '.env'));
  let config: Config;
  try {
    config = parseConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    stderr.write(`${err.message}\n`);
    return EXIT_FAILED;
  }
  if (configuredProviders(config).size === 0) {
    stderr.write('Invalid configuration:\n  - RUNBASE_API_KEY / RUNBLOB_API_KEY: set at least one image provider key\n');
    return EXIT_FAILED;
  }
  // The terminal belongs to the progress line and the result: only warnings and errors are logged (to stderr).
  const log: Logger = createLogger({
    level: config.LOG_LEVEL === 'info' ? 'warn' : config.LOG_LEVEL,
    secrets: secretsOf(config),
    destination: pino.destination({ fd: 2, sync: true }),
  });

  let store: Store | undefined;
  let engine: Engine | undefined;
  const providers = createProviderClients(config, { log });
  const deliverer = cliDeliverer({ cwd, stderr, stdout });
  const onSigint = () => {
    deliverer.endLine();
    stderr.write('Interrupted: the job stays in the store; a bot running on the same store finishes it and logs where its images are.\n');
    void (engine?.close() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSigint);
  try {
    store = await openStore(config.STORE_URL, { log });
    const quotas = new Quotas(store, {
      dailyUnits: config.QUOTA_DAILY_UNITS,
      costs: { '1K': config.QUOTA_COST_1K, '2K': config.QUOTA_COST_2K, '4K': config.QUOTA_COST_4K },
      exemptUsers: config.QUOTA_EXEMPT_USERS,
      spendCapUsd: config.SPEND_CAP_DAILY_USD,
    });
    // A one-shot process must not take over the bot's jobs (it would stop them when it exits).
    engine = createEngine({ ...engineSettingsOf(config, { references: false }), store, quotas, providers, log, timing: { takeoverIntervalMs: 0 } });
    engine.setDeliverer('cli', deliverer);
    const requester: Requester = { platform: 'cli', userId: operatorName() };
    const job = await engine.submit({
      prompt: args.prompt,
      model: args.model ?? engine.defaultModel.key,
      ratio: (args.ratio ?? (references.length ? DEFAULT_RATIO_WITH_REFERENCES : DEFAULT_RATIO)) as Ratio,
      resolution: (args.resolution ?? DEFAULT_RESOLUTION) as Resolution,
      count: args.count ?? DEFAULT_COUNT,
      ...(args.creativity !== undefined ? { creativity: args.creativity } : {}),
      references,
      requester,
    });
    const done = await engine.waitFor(job.id);
    deliverer.endLine();
    if (done.state !== 'succeeded') {
      stderr.write(`${done.error?.userMessage ?? 'The job did not finish.'}\n`);
      if (done.error?.detail) stderr.write(`(${done.error.code}: ${done.error.detail})\n`);
      return EXIT_FAILED;
    }
    if (deliverer.saved.length === 0) {
      stderr.write('The images were made but could not be saved to ./out.\n');
      return EXIT_FAILED;
    }
    return EXIT_OK;
  } catch (err) {
    deliverer.endLine();
    // Chat users get BotError sentences; an operator at a terminal also needs other errors' text.
    stderr.write(`${err instanceof BotError ? err.userMessage : err instanceof Error ? err.message : String(err)}\n`);
    return err instanceof ValidationError ? EXIT_USAGE : EXIT_FAILED;
  } finally {
    process.off('SIGINT', onSigint);
    await engine?.close().catch(() => undefined);
    await store?.close().catch(() => undefined);
    for (const p of providers) await p.close().catch(() => undefined);
  }
}

if (import.meta.main) {
  const code = await runCli(process.argv.slice(2));
  process.exit(code);
}
