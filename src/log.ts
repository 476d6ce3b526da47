/**
 * Structured logging: JSON lines by default, pretty output only when stdout is a terminal.
 * Secrets never reach the log: known secret-bearing fields are redacted by name, every
 * configured secret value is scrubbed from any string that is written, and so is every Discord
 * token carried in a URL path (below).
 */
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/**
 * Fields whose value never reaches the log, at any depth and whatever the value (a string, a
 * number, an object): `token`, `apiKey`, `authorization` (a request's `headers.authorization`),
 * `interactionToken` (a Discord reply's `location.interactionToken`), `secret`. Matched by name,
 * ignoring case. Done on the written line (SECRET_FIELD below), not with pino's `redact` paths:
 * pino 10's path redaction copies and walks every logged object for wildcard paths on each line,
 * about 9 µs a line and 4 µs a child logger against under 1 µs without it (a job writes about ten
 * lines at the default level: README.md "Benchmarks"), and stops at the depth its paths name.
 */
const SECRET_FIELDS = ['token', 'apiKey', 'authorization', 'interactionToken', 'secret'];
/**
 * `"<secret field>":<value>` in a JSON line: a string value (escapes included) or a number,
 * `true`, `false`, `null`, replaced in place; an object or array (`{` or `[`, group 2) sends the
 * line to `redactDeep`. A key is a JSON string, so text inside a string value (where quotes are
 * escaped) never matches.
 */
const SECRET_FIELD = new RegExp(`"(${SECRET_FIELDS.join('|')})":(?:"(?:[^"\\\\]|\\\\.)*"|[^,{}[\\]]+|([{[]))`, 'gi');
const SECRET_FIELD_NAMES = new Set(SECRET_FIELDS.map((f) => f.toLowerCase()));
const CENSOR = '[Redacted]';

/** `value` with every secret field's value, at any depth, replaced by CENSOR. */
function redactDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactDeep);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, SECRET_FIELD_NAMES.has(k.toLowerCase()) ? CENSOR : redactDeep(v)]));
}

/** A written line (one JSON object and its newline) with its secret fields' values replaced. */
export function redactSecretFields(line: string): string {
  let structured = false;
  const redacted = line.replace(SECRET_FIELD, (_m, field: string, opening: string | undefined) => {
    if (opening) {
      structured = true;
      return _m;
    }
    return `"${field}":"${CENSOR}"`;
  });
  if (!structured) return redacted;
  try {
    return `${JSON.stringify(redactDeep(JSON.parse(line)))}\n`;
  } catch {
    // Not one JSON object (pino writes nothing else): no field can be told apart from the rest.
    return CENSOR + '\n';
  }
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
