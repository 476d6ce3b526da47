/**
 * Midjourney-style flags in a prompt ("a cat on a sofa --ar 16:9 --res 4K --n 2 --model pro"),
 * shared by Discord (flags inside the prompt option), Slack (the slash command's text) and the
 * CLI. The flag names and value types come from IMAGINE_OPTIONS (definition.ts); the help text is
 * in help.ts.
 */
import { ValidationError } from '../../src/engine/errors.ts';
import { ALL_RATIOS, RESOLUTIONS, type Ratio, type Resolution } from '../../src/engine/models.ts';
import {
  IMAGINE_OPTIONS,
  IMAGINE_VALUE_OPTION_NAMES,
  REF_FLAG,
  type ImagineOptions,
  type ImagineValueOptionName,
} from './definition.ts';

export interface ParsedImagineText {
  /** The text with every flag (and its value) removed, trimmed. */
  prompt: string;
  options: Partial<ImagineOptions>;
  /** `--ref` links (and, with `localRefs`, other values as given), in the order given. */
  refs: string[];
}

export interface ParseImagineTextOptions {
  /** Keeps a `--ref` value that is not an http(s) link as given, for the caller to read as a local file (the CLI). */
  localRefs?: boolean;
}

type FlagTarget = ImagineValueOptionName | 'ref';

/** flag name (lowercase, no dashes) → what it sets. */
const FLAG_TARGETS: ReadonlyMap<string, FlagTarget> = new Map<string, FlagTarget>([
  ...IMAGINE_VALUE_OPTION_NAMES.flatMap((name) =>
    (IMAGINE_OPTIONS[name].flags ?? []).map((flag): [string, FlagTarget] => [flag, name]),
  ),
  ...REF_FLAG.flags.map((flag): [string, FlagTarget] => [flag, 'ref']),
]);

/** The main name of each flag (aliases are in the help), for error messages. */
const KNOWN_FLAGS = [...IMAGINE_VALUE_OPTION_NAMES.map((name) => IMAGINE_OPTIONS[name].flags[0]), REF_FLAG.flags[0]]
  .map((f) => `--${f}`)
  .join(', ');

/**
 * Phones and some keyboards turn "--" into an em dash (—) or en dash (–). A dash run directly
 * before a letter, at the start or after whitespace, is read as "--"; a dash between words or
 * followed by a space stays prose.
 */
const DASHES_BEFORE_FLAG = /(^|\s)(?:--|—|–|−−|‐‐|-–|–-)(?=\p{L})/gu;

/**
 * A flag: `--name` at the start or after whitespace, then optionally `=value`; a value separated
 * by whitespace is read after the match. Anything glued to the name ("--ar16:9") makes the whole
 * token the name, so it is reported as unknown instead of silently staying in the prompt.
 * Groups: 1 leading whitespace, 2 name, 3 `=value` (raw).
 */
const FLAG_PATTERN = /(^|\s+)--(\p{L}[^\s=]*)(?:=("[^"]*"|'[^']*'|“[^”]*”|‘[^’]*’|\S*))?/gu;
const VALUE_PATTERN = /^\s+("[^"]*"|'[^']*'|“[^”]*”|‘[^’]*’|\S+)/u;

function unquote(raw: string): string {
  const first = raw[0];
  const last = raw[raw.length - 1];
  const pairs: Record<string, string> = { '"': '"', "'": "'", '“': '”', '‘': '’' };
  if (raw.length >= 2 && first !== undefined && pairs[first] === last) return raw.slice(1, -1).trim();
  return raw.trim();
}

const list = (xs: readonly string[]) => xs.join(', ');

/** The range an option's definition declares: what the parser accepts and its sentences say. */
const COUNT_RANGE = { min: IMAGINE_OPTIONS.count.minValue, max: IMAGINE_OPTIONS.count.maxValue };
const CREATIVITY_RANGE = { min: IMAGINE_OPTIONS.creativity.minValue, max: IMAGINE_OPTIONS.creativity.maxValue };
/** The value in an option's example (`--n 2` → "2"), for "e.g." in a sentence that names the flag as typed. */
const exampleValue = (name: 'count' | 'creativity') => IMAGINE_OPTIONS[name].example.split(' ').pop() ?? '';

/** Reads "16:9", "16x9", "16/9" or "AUTO" as a ratio. */
function parseRatio(value: string): Ratio | undefined {
  const normalized = value.toLowerCase().replace(/^(\d+)\s*[x/∶×]\s*(\d+)$/u, '$1:$2');
  return ALL_RATIOS.find((r) => r === normalized);
}

function parseResolution(value: string): Resolution | undefined {
  const normalized = value.toUpperCase();
  return RESOLUTIONS.find((r) => r === normalized);
}

/**
 * Turns one flag's text value into its option's type, or throws a ValidationError whose sentence
 * names the flag as the user typed it and says what is allowed.
 */
export function parseFlagValue<K extends ImagineValueOptionName>(
  name: K,
  value: string,
  shownAs = `--${IMAGINE_OPTIONS[name].flags[0]}`,
): ImagineOptions[K] {
  const said = `${shownAs} ${value}`.trim();
  switch (name) {
    case 'ratio': {
      const ratio = parseRatio(value);
      if (!ratio) {
        throw new ValidationError('ratio', `${said} is not a ratio this bot knows. Use one of: ${list(ALL_RATIOS)}.`);
      }
      return ratio as ImagineOptions[K];
    }
    case 'resolution': {
      const resolution = parseResolution(value);
      if (!resolution) {
        throw new ValidationError(
          'resolution',
          `${said} is not a resolution this bot knows. Use one of: ${list(RESOLUTIONS)}.`,
        );
      }
      return resolution as ImagineOptions[K];
    }
    case 'count': {
      const count = /^\d+$/.test(value) ? Number(value) : NaN;
      if (!Number.isInteger(count) || count < COUNT_RANGE.min || count > COUNT_RANGE.max) {
        throw new ValidationError(
          'count',
          `${said} is not a number of images this bot can make. Use a whole number from ${COUNT_RANGE.min} to ${COUNT_RANGE.max}, e.g. ${shownAs} ${exampleValue('count')}.`,
        );
      }
      return count as ImagineOptions[K];
    }
    case 'creativity': {
      // A decimal comma is how half the world writes 0.7.
      const creativity = /^\d*[.,]?\d+$|^\d+[.,]?$/.test(value) ? Number(value.replace(',', '.')) : NaN;
      if (!Number.isFinite(creativity) || creativity < CREATIVITY_RANGE.min || creativity > CREATIVITY_RANGE.max) {
        throw new ValidationError(
          'creativity',
          `${said} is not a valid creativity. Use a number from ${CREATIVITY_RANGE.min} to ${CREATIVITY_RANGE.max}, e.g. ${shownAs} ${exampleValue('creativity')}.`,
        );
      }
      return creativity as ImagineOptions[K];
    }
    case 'model': {
      if (value === '') {
        throw new ValidationError('model', `${shownAs} needs a model name, e.g. ${shownAs} pro.`);
      }
      return value as ImagineOptions[K];
    }
    case 'private': {
      const lowered = value.toLowerCase();
      if (lowered === '' || ['true', 'yes', 'on', '1'].includes(lowered)) return true as ImagineOptions[K];
      if (['false', 'no', 'off', '0'].includes(lowered)) return false as ImagineOptions[K];
      throw new ValidationError('private', `${said} is not understood. Write just ${shownAs}.`);
    }
  }
  // Unreachable: every value option has a case above; TypeScript cannot prove it for a generic K.
  throw new ValidationError(name, `${shownAs} is not an option this bot knows.`);
}

/**
 * Reads option values a platform collected (Discord's typed options, Slack modal fields, which
 * are strings) into typed options, with the same checks and sentences as the flags (naming the
 * option, e.g. "ratio 7:3 is not a ratio…"). Unknown keys, null, undefined and '' are skipped.
 */
export function parseOptionValues(raw: Readonly<Record<string, unknown>>): Partial<ImagineOptions> {
  const options: Partial<ImagineOptions> = {};
  for (const name of IMAGINE_VALUE_OPTION_NAMES) {
    const value = raw[name];
    if (value === undefined || value === null || value === '') continue;
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw new ValidationError(name, `The ${name} option has a value this bot cannot read.`);
    }
    setOption(options, name, parseFlagValue(name, String(value).trim(), name));
  }
  return options;
}

/**
 * A `--ref` value as a link. Slack (and Discord users hiding previews) wrap links in <…>, Slack
 * adds "|label": both are unwrapped. Only http(s) links are taken here; the engine's SSRF guard
 * decides later whether the address is reachable and public.
 */
function parseRefValue(value: string, shownAs: string): string {
  const unwrapped = value.replace(/^<(.*)>$/u, '$1').replace(/\|.*$/u, '');
  let url: URL | undefined;
  try {
    url = new URL(unwrapped);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
    throw new ValidationError(
      'references',
      `${shownAs} ${value} is not a link to an image. Give a link starting with https://, e.g. ${REF_FLAG.example}.`,
    );
  }
  return url.href;
}

/**
 * Splits a prompt into its text and its flags. Flags may stand anywhere (usually at the end),
 * as `--ar 16:9`, `--ar=16:9`, `—ar 16:9` or with a quoted value (`--model "Nano Banana Pro (RunBlob)"`).
 * Values are case-insensitive. Throws a ValidationError naming the flag for an unknown flag, a
 * missing or bad value, or a flag given twice (except `--ref`, which repeats).
 */
export function parseImagineText(text: string, opts: ParseImagineTextOptions = {}): ParsedImagineText {
  const normalized = text.replace(DASHES_BEFORE_FLAG, '$1--');
  const options: Partial<ImagineOptions> = {};
  const refs: string[] = [];
  let prompt = '';
  let cursor = 0;

  const flagPattern = new RegExp(FLAG_PATTERN); // own lastIndex: this function moves it past values
  for (let match = flagPattern.exec(normalized); match; match = flagPattern.exec(normalized)) {
    const [whole, , rawName = '', equalsValue] = match;
    const flag = rawName.toLowerCase();
    const shownAs = `--${flag}`;
    const target = FLAG_TARGETS.get(flag);
    if (!target) {
      throw new ValidationError('flags', `${shownAs} is not a flag this bot knows. Flags: ${KNOWN_FLAGS}.`);
    }
    prompt += normalized.slice(cursor, match.index);
    let end = match.index + whole.length;

    let value: string;
    if (equalsValue !== undefined) {
      value = unquote(equalsValue);
    } else if (target === 'private') {
      value = ''; // a switch: never swallows the next word of the prompt
    } else {
      const next = VALUE_PATTERN.exec(normalized.slice(end));
      const raw = next?.[1];
      if (!next || raw === undefined || raw.startsWith('--')) {
        throw new ValidationError(target === 'ref' ? 'references' : target, missingValueSentence(target, shownAs));
      }
      value = unquote(raw);
      end += next[0].length;
    }
    flagPattern.lastIndex = end;
    cursor = end;

    if (target === 'ref') {
      refs.push(opts.localRefs && !/^<?https?:/iu.test(value) ? value : parseRefValue(value, shownAs));
      continue;
    }
    if (options[target] !== undefined) {
      throw new ValidationError(target, `${shownAs} is given twice. Keep one.`);
    }
    setOption(options, target, parseFlagValue(target, value, shownAs));
  }
  prompt += normalized.slice(cursor);
  return { prompt: prompt.trim(), options, refs };
}

/**
 * A word on its own (the CLI's argv is already split into words) as a flag: undefined when it is
 * not a flag this parser knows (`--ar=16:9` included: the caller splits at '='), else whether
 * it reads the next word as its value (all but the switch `--private`). Same names, aliases and
 * dashes (—ar) as parseImagineText.
 */
export function flagWord(word: string): { takesValue: boolean } | undefined {
  const match = /^--(\p{L}[^\s=]*)$/u.exec(word.replace(DASHES_BEFORE_FLAG, '$1--'));
  const target = match?.[1] === undefined ? undefined : FLAG_TARGETS.get(match[1].toLowerCase());
  return target === undefined ? undefined : { takesValue: target !== 'private' };
}

function setOption<K extends ImagineValueOptionName>(
  options: Partial<ImagineOptions>,
  name: K,
  value: ImagineOptions[K],
): void {
  options[name] = value;
}

function missingValueSentence(target: FlagTarget, shownAs: string): string {
  switch (target) {
    case 'ratio':
      return `${shownAs} needs a ratio. Use one of: ${list(ALL_RATIOS)}.`;
    case 'resolution':
      return `${shownAs} needs a resolution. Use one of: ${list(RESOLUTIONS)}.`;
    case 'count':
      return `${shownAs} needs a number of images from ${COUNT_RANGE.min} to ${COUNT_RANGE.max}, e.g. ${shownAs} ${exampleValue('count')}.`;
    case 'creativity':
      return `${shownAs} needs a number from ${CREATIVITY_RANGE.min} to ${CREATIVITY_RANGE.max}, e.g. ${shownAs} ${exampleValue('creativity')}.`;
    case 'model':
      return `${shownAs} needs a model name, e.g. ${shownAs} pro.`;
    case 'ref':
      return `${shownAs} needs a link to an image, e.g. ${REF_FLAG.example}.`;
    case 'private':
      return `${shownAs} takes no value.`;
  }
}
