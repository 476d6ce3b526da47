/**
 * The HTTP transport both provider clients share: undici `request` over an injectable dispatcher
 * (by default one keep-alive Agent per client), bearer auth, header/body timeouts, bounded answer
 * size, defensive parsing, zod validation of 2xx answers, and the shared retry policy with the
 * caller's rate gate awaited before every attempt.
 */
import { createHash } from 'node:crypto';
import { Agent, request, type Dispatcher } from 'undici';
import { pino } from 'pino';
import type { z } from 'zod';
import type { ProviderName } from './types.ts';
import type { Logger } from '../log.ts';
import type { ProviderMetrics, RequestOptions } from './types.ts';
import { MalformedResponseError, ProviderError } from './errors.ts';
import { providerErrorFromNetwork, providerErrorFromResponse } from './error-parsing.ts';
import { withRetry, type CallKind, type RetryPolicy, type Sleep } from './retry.ts';
import { MiB } from '../util/units.ts';

export const DEFAULT_TIMEOUT_MS = 30_000;
/** JSON answers are small; anything bigger is not one of the documented answers. */
export const MAX_ANSWER_BYTES = MiB;
const KEEP_ALIVE_MS = 30_000;
const USER_AGENT = 'imagine-bot/0.1 (undici)';

/** What both provider constructors take. Nothing is read from the environment. */
export interface ProviderClientOptions {
  apiKey: string;
  baseUrl: string;
  /** undici dispatcher (Agent, Pool, MockAgent…); default: one keep-alive Agent owned by the client. */
  dispatcher?: Dispatcher;
  log?: Logger;
  /** Header and body timeout of each attempt. */
  timeoutMs?: number;
  sleep?: Sleep;
  random?: () => number;
  maxAttempts?: number;
  /** Clock for Retry-After dates. */
  now?: () => number;
  /** Counts every attempt: requests, 429s, errors by code, latency (the app's Metrics, src/metrics.ts). */
  metrics?: ProviderMetrics;
}

/** A short stable id for an API key (groups rate budgets, appears in logs); never the key itself. */
export function keyIdOf(apiKey: string): string {
  return createHash('sha256').update(apiKey).digest('hex').slice(0, 12);
}

/** zod issues as "path: message" — names what was wrong, never echoes values. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 8)
    .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}

export interface CallSpec<S extends z.ZodType> {
  /** For logs: createTask, getTask, getBalance. */
  op: string;
  method: 'GET' | 'POST';
  /** Appended to the base URL; already URL-encoded. */
  path: string;
  body?: unknown;
  answer: S;
  kind: CallKind;
  gateKind: 'create' | 'poll';
  opts?: RequestOptions | undefined;
}

export class ProviderHttp {
  readonly provider: ProviderName;
  readonly keyId: string;
  readonly log: Logger;
  readonly #apiKey: string;
  readonly #baseUrl: string;
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;
  readonly #timeoutMs: number;
  readonly #retry: Partial<RetryPolicy>;
  readonly #now: () => number;
  readonly #metrics: ProviderMetrics | undefined;
  #closed = false;

  constructor(provider: ProviderName, opts: ProviderClientOptions) {
    if (!opts.apiKey) throw new TypeError(`${provider}: apiKey is required`);
    this.provider = provider;
    this.#apiKey = opts.apiKey;
    this.keyId = keyIdOf(opts.apiKey);
    this.#baseUrl = opts.baseUrl.replace(/\/+$/, '');
    // Validates the base URL now rather than at the first request.
    new URL(this.#baseUrl);
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#ownsDispatcher = opts.dispatcher === undefined;
    this.#dispatcher =
      opts.dispatcher ??
      new Agent({ keepAliveTimeout: KEEP_ALIVE_MS, headersTimeout: this.#timeoutMs, bodyTimeout: this.#timeoutMs });
    this.log = (opts.log ?? pino({ level: 'silent' })).child({ provider, keyId: this.keyId });
    this.#now = opts.now ?? Date.now;
    this.#metrics = opts.metrics;
    this.#retry = {};
    if (opts.sleep) this.#retry.sleep = opts.sleep;
    if (opts.random) this.#retry.random = opts.random;
    if (opts.maxAttempts !== undefined) this.#retry.maxAttempts = opts.maxAttempts;
  }

  /** One logical call: gate → request → parse → validate, under the retry policy for `kind`. */
  async call<S extends z.ZodType>(spec: CallSpec<S>): Promise<z.output<S>> {
    const signal = spec.opts?.signal;
    const gate = spec.opts?.gate;
    return withRetry(
      async () => {
        // Every attempt passes the gate, so the per-key budget counts retries too.
        if (gate) await gate(spec.gateKind, signal);
        const started = performance.now();
        try {
          const json = await this.#attempt(spec.method, spec.path, spec.body, signal);
          const parsed = spec.answer.safeParse(json);
          if (!parsed.success) {
            throw new MalformedResponseError({
              provider: this.provider,
              message: `${spec.method} ${spec.path} answered a body that does not match the documented schema: ${describeIssues(parsed.error)}`,
            });
          }
          this.#observe(spec.gateKind, started, undefined);
          return parsed.data;
        } catch (err) {
          this.#observe(spec.gateKind, started, err);
          throw err;
        }
      },
      {
        ...this.#retry,
        kind: spec.kind,
        signal,
        onRetry: ({ attempt, delayMs, error }) =>
          this.log.warn(
            {
              op: spec.op,
              attempt,
              delayMs,
              code: error instanceof ProviderError ? error.code : undefined,
              providerCode: error instanceof ProviderError ? error.providerCode : undefined,
              status: error instanceof ProviderError ? error.status : undefined,
            },
            'provider call failed; retrying',
          ),
      },
    );
  }

  /** Reports one attempt to the metrics: its latency, and its status and code when it failed. */
  #observe(kind: 'create' | 'poll', started: number, err: unknown): void {
    if (!this.#metrics) return;
    const failure = err instanceof ProviderError ? err : undefined;
    this.#metrics.providerAttempt({
      provider: this.provider,
      keyId: this.keyId,
      kind,
      seconds: (performance.now() - started) / 1000,
      status: failure?.status,
      errorCode: failure?.code,
    });
  }

  async #attempt(method: 'GET' | 'POST', path: string, body: unknown, signal: AbortSignal | undefined): Promise<unknown> {
    const url = `${this.#baseUrl}${path}`;
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.#apiKey}`,
      accept: 'application/json',
      'user-agent': USER_AGENT,
    };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, {
        method,
        headers,
        body: body === undefined ? null : JSON.stringify(body),
        dispatcher: this.#dispatcher,
        headersTimeout: this.#timeoutMs,
        bodyTimeout: this.#timeoutMs,
        signal: signal ?? null,
      });
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw providerErrorFromNetwork(this.provider, err);
    }
    let text: string | undefined;
    try {
      text = await readBounded(res.body, MAX_ANSWER_BYTES);
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw providerErrorFromNetwork(this.provider, err);
    }
    if (res.statusCode < 200 || res.statusCode > 299) {
      // An oversized error page still says what the status says.
      throw providerErrorFromResponse(this.provider, res.statusCode, text ?? '', res.headers, this.#now());
    }
    if (text === undefined) {
      throw new MalformedResponseError({
        provider: this.provider,
        status: res.statusCode,
        message: `${method} ${path} answered HTTP ${res.statusCode} with more than ${MAX_ANSWER_BYTES} bytes`,
      });
    }
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new MalformedResponseError({
        provider: this.provider,
        status: res.statusCode,
        message: `${method} ${path} answered HTTP ${res.statusCode} with a body that is not JSON (${text.trim() === '' ? 'empty' : `${text.length} characters`})`,
      });
    }
  }

  /** Closes the keep-alive connections when the client created its own Agent. */
  async close(): Promise<void> {
    if (!this.#ownsDispatcher || this.#closed) return;
    this.#closed = true;
    await this.#dispatcher.close();
  }
}

/** The body as text, or undefined when it exceeds `maxBytes` (the rest is discarded). */
async function readBounded(body: Dispatcher.ResponseData['body'], maxBytes: number): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    size += buf.length;
    if (size > maxBytes) {
      body.destroy();
      return undefined;
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
}
