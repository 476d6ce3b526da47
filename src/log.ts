/**
 * Structured logging: JSON lines by default, pretty output only when stdout is a terminal.
 * Secrets are kept out of the log: known secret-bearing fields are redacted by name, every
 * configured secret value is scrubbed from any string that is written, and so is every Discord
 * token carried in a URL path (below). A secret under another name, or inside a string, is
 * removed only if it is one of the configured ones.
 */
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/**
 * Fields whose value, whatever it is (a string, a number, an object), is never written, at any
 * depth, matched by name ignoring case (e.g. a request's `headers.authorization`, a Discord
 * reply's `location.interactionToken`). Done on the written line (redactSecretFields), not with
 * pino's `redact` paths, which in pino 10 copy and walk every logged object on each line for
 * wildcard paths (several times the cost of the line itself: `npm run bench -- log`) and stop at
 * the depth their paths name.
 */
const SECRET_FIELDS = ['token', 'apiKey', 'authorization', 'interactionToken', 'secret'];
/**
 * `"<secret field>":` and its value in a JSON line: a string (escapes included), or a number,
 * `true`, `false`, `null`; or only the `{` or `[` that opens an object or array (its end is found
 * by endOfJsonValue). A key is a JSON string, so text inside a string value, where quotes are
 * escaped, never matches.
 */
const SECRET_FIELD = new RegExp(`"(${SECRET_FIELDS.join('|')})":(?:"(?:[^"\\\\]|\\\\.)*"|[^,{}[\\]]+|[{[])`, 'gi');
const CENSOR = '[Redacted]';
/** Written instead of a line whose secret value has no end (pino writes no such line): nothing of it can be told safe. */
const UNREDACTABLE_LINE = `{"level":50,"msg":"a log line with a secret field that could not be delimited was dropped"}\n`;

/** Where the object or array opening at `text[start]` ends (the index after its closing bracket); -1 if it does not. */
function endOfJsonValue(text: string, start: number): number {
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') depth++;
    else if ((c === '}' || c === ']') && --depth === 0) return i + 1;
  }
  return -1;
}

/** A written line (one JSON object and its newline) with each secret field's value replaced by CENSOR, the rest byte for byte. */
export function redactSecretFields(line: string): string {
  const found = SECRET_FIELD; // global: searched from lastIndex, set here (synchronous, so never shared mid-search)
  found.lastIndex = 0;
  let out = '';
  let from = 0;
  for (let m = found.exec(line); m !== null; m = found.exec(line)) {
    let end = m.index + m[0].length;
    const last = m[0][m[0].length - 1];
    // Only the object-or-array alternative ends in an opening bracket (a string ends in its quote; a scalar has none).
    if (last === '{' || last === '[') {
      end = endOfJsonValue(line, end - 1);
      if (end < 0) return UNREDACTABLE_LINE;
    }
    out += `${line.slice(from, m.index)}"${m[1]}":"${CENSOR}"`;
    from = end;
    found.lastIndex = end;
  }
  return from === 0 ? line : out + line.slice(from);
}

/**
 * A token in a Discord route: interaction tokens (valid 15 minutes) and webhook tokens are path
 * segments, `/interactions/{id}/{token}/callback` and `/webhooks/{application_id}/{token}…`
 * (docs/discord.md). They reach the log in a DiscordAPIError's `url`, its message or stack, a
 * request body: the written line is scrubbed, so wherever the route appears only the token goes.
 * The segment stops at `/`, `?`, `#`, whitespace, a quote or a JSON escape.
 */
const ROUTE_TOKEN = /(\/(?:webhooks|interactions)\/[^/?#\s"\\]+\/)[^/?#\s"\\]+/g;

export interface LoggerOptions {
  level?: string;
  /** Secret values to scrub wherever they appear (tokens, API keys). */
  secrets?: readonly string[];
  /** Where to write; defaults to stdout (pretty when it is a TTY). */
  destination?: DestinationStream;
  pretty?: boolean;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const secrets = (opts.secrets ?? []).filter((s) => s.length >= 6);
  const scrub = (line: string) => secrets.reduce((acc, s) => acc.split(s).join(CENSOR), redactSecretFields(line).replace(ROUTE_TOKEN, `$1${CENSOR}`));
  const pretty = opts.pretty ?? (!opts.destination && process.stdout.isTTY === true);
  const base = { level: opts.level ?? 'info' };
  // Pretty output is formatted from the same JSON lines (pino-pretty in a worker): scrubbed first too.
  const out: DestinationStream = pretty
    ? pino.transport({ target: 'pino-pretty', options: { colorize: true } })
    : (opts.destination ?? pino.destination({ fd: 1, sync: false }));
  const scrubbing: DestinationStream = { write: (chunk: string) => out.write(scrub(chunk)) };
  return pino(base, scrubbing);
}
