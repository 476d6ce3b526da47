/**
 * `npm run imagine -- "prompt" [flags]`: the chat's flags (--model, --ar, --res, --n, --cr and their
 * aliases, from commands/imagine/definition.ts), as separate words or inside the prompt, plus --ref with a
 * local file or a link, and -h/--help.
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
import { pino } from 'pino';
import {
  buildImagineRequest,
  DEFAULT_COUNT,
  DEFAULT_RATIO,
  DEFAULT_RATIO_WITH_REFERENCES,
  DEFAULT_RESOLUTION,
  flagHelpLines,
  flagWord,
  imagine,
  IMAGINE_OPTIONS,
  IMAGINE_VALUE_OPTION_NAMES,
  parseImagineText,
  REF_FLAG,
  type ImagineOptions,
} from '../../commands/imagine/index.ts';
import type { OptionDefinition } from '../../commands/options.ts';
import { PLAIN_FORMAT } from '../../commands/render.ts';
import { ceilingsOf, ConfigError, configuredProviders, loadDotEnv, parseConfig, secretsOf, type Config } from '../config.ts';
import { engineSettingsOf } from '../app.ts';
import { createEngine, type Engine } from '../engine/engine.ts';
import { ValidationError } from '../engine/errors.ts';
import type { Deliverer, JobRecord, ProgressEvent } from '../engine/job.ts';
import { MODEL_CATALOG } from '../engine/models.ts';
import { openStore } from '../engine/open-store.ts';
import { Quotas } from '../engine/quota.ts';
import type { ReferenceInput, Requester } from '../engine/request.ts';
import type { Store } from '../engine/store.ts';
import { BotError } from '../errors.ts';
import { createLogger, type Logger } from '../log.ts';
import { createProviderClients } from '../providers/index.ts';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
/** Where images are saved, relative to the working directory. */
export const OUT_DIR = 'out';

/** The CLI's own flags, besides the chat's. */
const HELP_WORDS: readonly string[] = ['-h', '--help'];

/**
 * The usage, from the same definitions as the chat's help (commands/imagine/help.ts flagHelpLines): every
 * model of the catalog is listed, since the configuration is not read to print it.
 */
export const USAGE = [
  'Usage: npm run imagine -- "<prompt>" [flags]',
  '  e.g. npm run imagine -- "a red fox in the snow, watercolor" --ar 16:9 --res 2K --n 2',
  '',
  'Flags go after the prompt as separate words, or inside it ("a red fox --ar 16:9"); values are not',
  'case-sensitive; --ar=16:9 works too, and so does —ar (a phone\'s long dash).',
  '',
  ...flagHelpLines(MODEL_CATALOG, 'cli'),
  `${REF_FLAG.flags.map((f) => `--${f}`).join(' / ')} <file or link>: a reference image, a local file or an http(s) link (repeat for several). Example: --ref cat.png`,
  `${HELP_WORDS.join(' / ')}: show this help`,
  '',
  `Defaults: the model DEFAULT_MODEL names (else the first configured), ${DEFAULT_RATIO} (${DEFAULT_RATIO_WITH_REFERENCES} with reference images), ${DEFAULT_RESOLUTION}, ${DEFAULT_COUNT} image.`,
  `Images are saved to ./${OUT_DIR}/<jobId>-<n>.<ext>; their paths are printed on stdout.`,
  'Configuration comes from the environment or .env (see .env.example).',
].join('\n');

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface CliArgs {
  help: boolean;
  /** The prompt with every flag removed. */
  prompt: string;
  /** The flags' values, checked as in chat; without options the command line does not have (--private). */
  options: Partial<ImagineOptions>;
  /** `--ref` values in the order given: http(s) links, or local paths (see referencesFrom). */
  refs: string[];
  /** What the operator should know about the flags (an option ignored here), one sentence each. */
  notes: string[];
}

/** Quotes (for parseImagineText) a value word the shell kept whole: "Nano Banana Pro (RunBlob)". */
function asOneWord(value: string): string {
  if (value !== '' && !/\s/u.test(value)) return value;
  const pair = [['"', '"'], ["'", "'"], ['“', '”'], ['‘', '’']].find(([open, close]) => !value.includes(open!) && !value.includes(close!));
  return pair ? `${pair[0]}${value}${pair[1]}` : value;
}

/**
 * argv as one chat text: words joined by spaces, except that a flag's value keeps its spaces
 * (quoted). A lone `--` (end of options) is dropped; `-m`, a whole word with one dash, is read
 * as `--m` (command-line habit; the old CLI took -m).
 */
function argvText(argv: readonly string[]): string {
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    let word = argv[i] ?? '';
    if (word === '--') continue;
    if (/^-\p{L}[^\s=]*(?:=.*)?$/su.test(word)) word = `-${word}`;
    const equals = word.indexOf('=');
    const name = equals > 0 ? word.slice(0, equals) : word;
    const flag = flagWord(name);
    const next = argv[i + 1];
    if (flag && equals > 0) {
      words.push(`${name}=${asOneWord(word.slice(equals + 1))}`);
    } else if (flag?.takesValue && next !== undefined) {
      words.push(word, asOneWord(next));
      i++;
    } else {
      words.push(word);
    }
  }
  return words.join(' ');
}

const PLATFORM_LABELS: Readonly<Record<string, string>> = { discord: 'Discord', slack: 'Slack' };

/**
 * Parses argv (without node and the script) exactly as chat parses a prompt (parseImagineText):
 * same flags, aliases, values and sentences. Throws UsageError, before any configuration is
 * read, for a bad flag and for an empty or too long prompt: a typo gets the usage, not a
 * configuration error. Which models exist is the configuration's, so an unknown --model is
 * refused later, by buildImagineRequest; what only the chosen model refuses (8:1 on Pro) is the
 * engine's to say.
 *
 * An option only Discord has (--private) is ignored with a note rather than refused: a prompt
 * copied from Discord still runs, and images saved to ./out are seen only by the operator anyway.
 */
export function parseCliArgs(argv: readonly string[]): CliArgs {
  if (argv.some((word) => HELP_WORDS.includes(word))) return { help: true, prompt: '', options: {}, refs: [], notes: [] };
  try {
    const parsed = parseImagineText(argvText(argv), { localRefs: true });
    const options = { ...parsed.options };
    const notes: string[] = [];
    for (const name of IMAGINE_VALUE_OPTION_NAMES) {
      const def: OptionDefinition = IMAGINE_OPTIONS[name];
      if (options[name] === undefined || !def.platforms || def.platforms.includes('cli')) continue;
      delete options[name];
      const where = def.platforms.map((p) => PLATFORM_LABELS[p] ?? p).join(' and ');
      notes.push(`--${def.flags?.[0] ?? name} is ignored: it only applies on ${where} ("${def.description}").`);
    }
    // The prompt checks (empty, too long) are buildImagineRequest's: run now with the model left
    // to a default, since the configured models are not known yet.
    const someModel = MODEL_CATALOG[0];
    if (someModel) {
      buildImagineRequest(
        { prompt: parsed.prompt, options: { ...options, model: undefined }, refs: [], requester: { platform: 'cli', userId: 'operator' }, location: {} },
        MODEL_CATALOG,
        someModel,
      );
    }
    return { help: false, prompt: parsed.prompt, options, refs: parsed.refs, notes };
  } catch (err) {
    if (err instanceof ValidationError) throw new UsageError(err.userMessage);
    throw err;
  }
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

  for (const note of args.notes) stderr.write(`${note}\n`);

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
    // The store last: on SQLite, closing it commits the writes of the current turn (group commit).
    void (engine?.close() ?? Promise.resolve())
      .then(() => store?.close())
      .catch(() => undefined)
      .finally(() => process.exit(130));
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
    engine = createEngine({ ...engineSettingsOf(config, { http: false }), store, quotas, providers, log, ceilings: ceilingsOf(config), timing: { takeoverIntervalMs: 0 } });
    engine.setDeliverer('cli', deliverer);
    const requester: Requester = { platform: 'cli', userId: operatorName() };
    // The same command as chat: defaults, the unknown-model sentence (the configured models) and
    // what the model can make are checked before anything is stored or charged.
    const ready = engine;
    const invocation = imagine.prepare({ options: { prompt: args.prompt, ...args.options }, refs: references, requester }, ready);
    const job = await invocation.run({ engine: ready, submit: (request) => ready.submit(request), format: PLAIN_FORMAT, location: {}, reply: async (text) => void stdout.write(`${text}\n`) });
    if (!job) return EXIT_FAILED;
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
