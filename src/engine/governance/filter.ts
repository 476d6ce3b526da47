/**
 * A server's prompt filter (docs/governance.md "What"): entries are words or phrases, or
 * /patterns/. Both sides are folded the same way (Unicode NFKD, combining marks stripped,
 * lower case), so "Café", "CAFE" and "café" are one word to the filter. A plain entry matches a
 * whole word or phrase ("ass" does not refuse "class"); a /pattern/ is a JavaScript regular
 * expression with the flags "iu", compiled once and checked when an admin adds it.
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

/** Compiled entries, once per process (a server's filter is read on every /imagine). */
const compiled = new Map<string, RegExp>();

/** The RegExp for an entry; throws SyntaxError for an invalid /pattern/. */
function compile(entry: string): RegExp {
  const cached = compiled.get(entry);
  if (cached) return cached;
  const body = patternBody(entry);
  let re: RegExp;
  if (body !== undefined) {
    re = new RegExp(body, 'iu');
  } else {
    // Whole word or phrase: not preceded or followed by a letter, digit or underscore; any run
    // of spaces in the entry matches any run of white space in the prompt.
    const words = fold(entry).trim().split(/\s+/).map(escapeRegExp).join('\\s+');
    re = new RegExp(`(?<![\\p{L}\\p{N}_])${words}(?![\\p{L}\\p{N}_])`, 'u');
  }
  compiled.set(entry, re);
  return re;
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
  try {
    compile(trimmed);
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
  const folded = fold(prompt);
  for (const entry of filter) {
    let re: RegExp;
    try {
      re = compile(entry.trim());
    } catch {
      continue; // validated when added; an entry stored by an older version that no longer compiles refuses nothing
    }
    if (re.test(folded)) return true;
    if (patternBody(entry.trim()) !== undefined && re.test(prompt)) return true;
  }
  return false;
}
