/**
 * Structured logging: JSON lines by default, pretty output only when stdout is a terminal.
 * Secrets never reach the log: known secret-bearing fields are redacted by path, every
 * configured secret value is scrubbed from any string that is written, and so is every Discord
 * token carried in a URL path (below).
 */
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

const REDACT_PATHS = [
  'token',
  '*.token',
  'apiKey',
  '*.apiKey',
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'req.headers.authorization',
  'interactionToken',
  '*.interactionToken',
  'location.interactionToken',
  '*.location.interactionToken',
  'secret',
  '*.secret',
];

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
  const scrub = (line: string) => secrets.reduce((acc, s) => acc.split(s).join('[Redacted]'), line.replace(ROUTE_TOKEN, '$1[Redacted]'));
  const pretty = opts.pretty ?? (!opts.destination && process.stdout.isTTY === true);
  const base = {
    level: opts.level ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[Redacted]' },
  };
  // Pretty output is formatted from the same JSON lines (pino-pretty in a worker): scrubbed first too.
  const out: DestinationStream = pretty
    ? pino.transport({ target: 'pino-pretty', options: { colorize: true } })
    : (opts.destination ?? pino.destination({ fd: 1, sync: false }));
  const scrubbing: DestinationStream = { write: (chunk: string) => out.write(scrub(chunk)) };
  return pino(base, scrubbing);
}
