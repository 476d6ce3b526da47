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

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');

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

function compileFilter(filter: readonly string[]): CompiledFilter {
  const key = filter.join('\u0000');
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
      words.push(fold(entry).trim().split(/\s+/).map(escapeRegExp).join('\\s+'));
      continue;
    }
    try {
      patterns.push(patternRegExp(body));
    } catch {
      // Validated when added; an entry stored by an older version that no longer compiles refuses nothing.
    }
  }
  // Whole words or phrases: not preceded or followed by a letter, digit or underscore.
  const built = {
    words: words.length > 0 ? new RegExp(`(?<![\\p{L}\\p{N}_])(?:${words.join('|')})(?![\\p{L}\\p{N}_])`, 'u') : undefined,
    patterns,
  };
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
  if (trimmed === '' || trimmed === '//') return 'A filter entry needs a word, a phrase or a /pattern/.';
  if (trimmed.length > MAX_FILTER_ENTRY_CHARS)
    return `A filter entry may be at most ${MAX_FILTER_ENTRY_CHARS} characters long; this one has ${trimmed.length}.`;
  const body = patternBody(trimmed);
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
