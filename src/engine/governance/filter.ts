/**
 * A server's prompt filter (docs/governance.md "What"): entries are words or phrases, or
 * /patterns/. Both sides are folded the same way (Unicode NFKD, combining marks stripped,
 * lower case), so "Café", "CAFE" and "café" are one word to the filter. A plain entry matches a
 * whole word or phrase ("ass" does not refuse "class"); a /pattern/ is a JavaScript regular
 * expression with the flags "iu", checked when an admin adds it. A server's filter is compiled once
 * per process, not on every /imagine.
 */

/** Longest entry an admin may add: keeps patterns readable and their matching cheap. */
export const MAX_FILTER_ENTRY_CHARS = 200;
/** Most entries one server may keep. */
export const MAX_FILTER_ENTRIES = 200;

/** NFKD, without combining marks, lower case: "Ｃafé" → "cafe". */
export function fold(text: string): string {
  return text.normalize('NFKD').replace(/\p{M}/gu, '').toLowerCase();
}

/** The body of an entry written /like this/, or undefined for a plain word or phrase. */
function patternBody(entry: string): string | undefined {
  return entry.length >= 2 && entry.startsWith('/') && entry.endsWith('/') ? entry.slice(1, -1) : undefined;
}

/**
 * Escapes what is special in a regular expression outside a character class. Not `-`: with the
 * flag `u`, which the whole-word expression needs for \p{…}, `\-` there is a SyntaxError.
 */
const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** A /pattern/'s RegExp; throws SyntaxError for an invalid one. */
const patternRegExp = (body: string) => new RegExp(body, 'iu');

/**
 * A filter as matched: every plain entry in one alternation, and each /pattern/ on its own (its
 * groups and flags are the admin's). One alternation costs about 1 ms to build and well under a
 * microsecond to try, where 200 separate whole-word expressions cost about 90 ms to build (V8
 * builds each \p{…} class again) and about 14 µs to try on every /imagine (measured on Node 26).
 */
interface CompiledFilter {
  words: RegExp | undefined;
  patterns: RegExp[];
}

/**
 * Compiled filters kept per process, the least recently used going first past this many: a
 * server's filter is read on every /imagine, and one an admin has changed, or of a server that
 * has gone, is not kept for the life of the process.
 */
export const COMPILED_FILTERS_KEPT = 1_000;
const compiled = new Map<string, CompiledFilter>();

/** How many compiled filters are kept (for tests: at most COMPILED_FILTERS_KEPT). */
export function compiledFiltersKept(): number {
  return compiled.size;
}

/** Whether `filter` is compiled and kept now (for tests). */
export function filterIsCompiled(filter: readonly string[]): boolean {
  return compiled.has(JSON.stringify(filter));
}

/** A plain entry's words, folded as the prompt is ("Café  Noir" → ["cafe", "noir"]); none when it folds to nothing. */
function plainWords(entry: string): string[] {
  const folded = fold(entry).trim();
  return folded === '' ? [] : folded.split(/\s+/);
}

/**
 * One expression for the words and phrases (escaped): each matches when not preceded or followed
 * by a letter, digit or underscore. Escaped text always compiles; were one not to, the others
 * would still be matched rather than the whole filter failing every /imagine.
 */
function wholeWords(sources: readonly string[]): RegExp | undefined {
  const build = (alternatives: readonly string[]) => new RegExp(`(?<![\\p{L}\\p{N}_])(?:${alternatives.join('|')})(?![\\p{L}\\p{N}_])`, 'u');
  if (sources.length === 0) return undefined;
  try {
    return build(sources);
  } catch {
    const valid = sources.filter((source) => {
      try {
        new RegExp(source, 'u');
        return true;
      } catch {
        return false;
      }
    });
    return valid.length > 0 ? build(valid) : undefined;
  }
}

function compileFilter(filter: readonly string[]): CompiledFilter {
  // JSON, not a join: no entry's text can make two filters one key.
  const key = JSON.stringify(filter);
  const cached = compiled.get(key);
  if (cached) {
    compiled.delete(key);
    compiled.set(key, cached);
    return cached;
  }
  const words: string[] = [];
  const patterns: RegExp[] = [];
  for (const raw of filter) {
    const entry = raw.trim();
    const body = patternBody(entry);
    if (body === undefined) {
      // Any run of spaces in the entry matches any run of white space in the prompt.
      const parts = plainWords(entry);
      if (parts.length > 0) words.push(parts.map(escapeRegExp).join('\\s+'));
      continue;
    }
    try {
      patterns.push(patternRegExp(body));
    } catch {
      // Validated when added; an entry stored by an older version that no longer compiles refuses nothing.
    }
  }
  const built = { words: wholeWords(words), patterns };
  if (compiled.size >= COMPILED_FILTERS_KEPT) compiled.delete(compiled.keys().next().value!);
  compiled.set(key, built);
  return built;
}

/**
 * Why `entry` cannot be added, as a sentence for the admin, or undefined when it is fine.
 * (The ADMIN_INVALID sentence family, src/errors.ts.)
 */
export function filterEntryProblem(entry: string): string | undefined {
  const trimmed = entry.trim();
  const body = patternBody(trimmed);
  // An entry of combining marks alone folds to nothing, and would match between any two spaces.
  if (trimmed === '' || body === '' || (body === undefined && plainWords(trimmed).length === 0)) return 'A filter entry needs a word, a phrase or a /pattern/.';
  if (trimmed.length > MAX_FILTER_ENTRY_CHARS)
    return `A filter entry may be at most ${MAX_FILTER_ENTRY_CHARS} characters long; this one has ${trimmed.length}.`;
  try {
    if (body !== undefined) patternRegExp(body);
  } catch (err) {
    return `${trimmed} is not a valid pattern (${(err as Error).message}). Write a JavaScript regular expression between slashes, e.g. /bad\\s*word/.`;
  }
  return undefined;
}

/**
 * True when `prompt` matches an entry of `filter`. A pattern is tried on the folded prompt and on
 * the prompt as typed (so a pattern written with accents still matches them).
 */
export function promptMatches(prompt: string, filter: readonly string[]): boolean {
  if (filter.length === 0) return false;
  const { words, patterns } = compileFilter(filter);
  const folded = fold(prompt);
  if (words?.test(folded)) return true;
  return patterns.some((re) => re.test(folded) || re.test(prompt));
}
