/**
 * Structured logging: JSON lines by default, pretty output only when stdout is a terminal.
 * Secrets never reach the log: known secret-bearing fields are redacted by path, and every
 * configured secret value is scrubbed from any string that is written.
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
  const scrub = (line: string) => secrets.reduce((acc, s) => acc.split(s).join('[Redacted]'), line);
  const pretty = opts.pretty ?? (!opts.destination && process.stdout.isTTY === true);
  const base = {
    level: opts.level ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[Redacted]' },
  };
  if (pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true } } });
  }
  const out = opts.destination ?? pino.destination({ fd: 1, sync: false });
  if (secrets.length === 0) return pino(base, out);
  const scrubbing: DestinationStream = { write: (chunk: string) => out.write(scrub(chunk)) };
  return pino(base, scrubbing);
}
