/**
 * Shared plumbing of the fake provider servers (test/fakes/runbase.ts, test/fakes/runblob.ts):
 * a node:http server on 127.0.0.1:0 that records every request, applies injected faults in
 * order, then hands the request to the fake's own handler.
 *
 * Fault injection (`injectFault(spec)`), consumed in the order injected; each request takes the
 * first queued fault whose `match` fits it, `times` times (default 1):
 *
 *   match          'create' | 'get' | 'download' | … (the fake's request kinds) | 'any' | (req) => boolean
 *   times          how many matching requests it applies to (default 1)
 *   delayMs        wait this long before answering (alone: a slow but otherwise normal answer)
 *   delayAnswerMs  process the request for real, then wait this long before sending its answer (a
 *                  create whose task finishes, and calls back, before its answer reaches the client)
 *   status         answer this status instead of handling the request; with no `body` the fake's
 *                  documented error body for that status is sent (e.g. Runbase 429 → RATE_LIMITED)
 *   body           a JSON value; a string is sent raw (not JSON-encoded, Content-Type text/plain
 *                  unless `headers` say otherwise). A body without a status answers 200 (a
 *                  malformed success).
 *   rewrite        (realJson) => replacement: handles the request for real and rewrites its
 *                  answer's JSON (a returned string is sent raw); implies `handled`.
 *   headers        extra answer headers (e.g. { 'retry-after': '1' })
 *   dropConnection destroy the socket without any answer
 *   handled        process the request for real first (a create really creates and charges a
 *                  task), then replace/drop its answer: "the request landed, the answer was lost"
 *   malformed      shortcut for broken success answers (implies handled, except 'non-json' and 'empty'):
 *                  'non-json' → 200 text/html page; 'empty' → 200 with an empty body;
 *                  'missing-fields' → the real JSON minus `status` and the id field;
 *                  'wrong-types' → the real JSON with `status` a number and the id null.
 *
 * Faults bypass authentication and rate limiting unless `handled` is set. Every answer of status
 * 429 (real or injected) increments `counts.rateLimited`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type MalformedKind = 'non-json' | 'empty' | 'missing-fields' | 'wrong-types';

export interface RecordedRequest<K extends string = string> {
  /** 1-based arrival order. */
  seq: number;
  /** Date.now() at arrival. */
  at: number;
  kind: K | 'other';
  method: string;
  /** pathname + query string, as sent. */
  path: string;
  pathname: string;
  query: Record<string, string>;
  /** As received (lower-case names); `authorization` is kept so tests can assert the client sent it. */
  headers: http.IncomingHttpHeaders;
  /** Parsed JSON; the raw text when the body is not JSON; undefined when empty. */
  body: unknown;
  /** True when a non-empty body was not valid JSON. */
  jsonError: boolean;
  /** Status answered (0 = connection dropped); undefined while in flight. */
  status?: number;
  /** True when an injected fault applied to this request. */
  faulted: boolean;
}

export interface FaultSpec<K extends string = string> {
  match: K | 'any' | ((req: RecordedRequest<K>) => boolean);
  times?: number;
  status?: number;
  body?: unknown;
  rewrite?: (realJson: unknown) => unknown;
  headers?: Record<string, string>;
  delayMs?: number;
  delayAnswerMs?: number;
  dropConnection?: boolean;
  handled?: boolean;
  malformed?: MalformedKind;
}

/** What a fake's handler answers. `raw` wins over `json`. */
export interface Answer {
  status: number;
  json?: unknown;
  raw?: Buffer | string;
  headers?: Record<string, string>;
}

export type Counts<K extends string> = Record<K | 'other' | 'total' | 'rateLimited', number>;

export interface HarnessOptions<K extends string> {
  kinds: readonly K[];
  classify(method: string, pathname: string): K | 'other';
  handle(req: RecordedRequest<K>, client: { ip: string }): Promise<Answer>;
  /** The documented error body this provider sends for a status (used by status-only faults). */
  defaultErrorBody(status: number): unknown;
  /** Names of the id field, removed/nulled by 'missing-fields'/'wrong-types' malformations. */
  idFields: readonly string[];
  maxBodyBytes?: number;
}

export interface Harness<K extends string> {
  origin: string;
  requests: RecordedRequest<K>[];
  counts: Counts<K>;
  injectFault(spec: FaultSpec<K>): void;
  clearFaults(): void;
  pendingFaults(): number;
  /** setTimeout that close() cancels (the promise then resolves early). */
  sleep(ms: number): Promise<void>;
  /** A timer that close() clears. */
  schedule(ms: number, fn: () => void): void;
  /** Run at close() (e.g. abort outgoing callbacks). */
  onClose(fn: () => void | Promise<void>): void;
  readonly closed: boolean;
  close(): Promise<void>;
}

/** Big enough for RunBlob's 8 images × 20 MB as base64. */
const DEFAULT_MAX_BODY_BYTES = 256 * 1024 * 1024;

interface QueuedFault<K extends string> {
  spec: FaultSpec<K>;
  left: number;
}

export async function startHarness<K extends string>(opts: HarnessOptions<K>): Promise<Harness<K>> {
  const requests: RecordedRequest<K>[] = [];
  const counts = { other: 0, total: 0, rateLimited: 0 } as Counts<K>;
  for (const kind of opts.kinds) counts[kind] = 0;
  const faults: QueuedFault<K>[] = [];
  const timers = new Set<{ timer: NodeJS.Timeout; wake: () => void }>();
  const closers: (() => void | Promise<void>)[] = [];
  const maxBodyBytes = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  let closed = false;
  let seq = 0;

  const schedule = (ms: number, fn: () => void): void => {
    if (closed) return;
    const entry = {
      timer: setTimeout(() => {
        timers.delete(entry);
        fn();
      }, Math.max(0, ms)),
      wake: () => {},
    };
    timers.add(entry);
  };
  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      if (closed) return resolve();
      const entry = {
        timer: setTimeout(() => {
          timers.delete(entry);
          resolve();
        }, Math.max(0, ms)),
        wake: resolve,
      };
      timers.add(entry);
    });

  const takeFault = (req: RecordedRequest<K>): FaultSpec<K> | undefined => {
    const index = faults.findIndex(({ spec }) =>
      typeof spec.match === 'function' ? spec.match(req) : spec.match === 'any' || spec.match === req.kind,
    );
    if (index < 0) return undefined;
    const queued = faults[index]!;
    queued.left -= 1;
    if (queued.left <= 0) faults.splice(index, 1);
    return queued.spec;
  };

  const malform = (kind: MalformedKind, real: Answer): Answer => {
    if (kind === 'non-json') {
      return { status: 200, raw: '<html><body><h1>502 Bad Gateway</h1></body></html>', headers: { 'content-type': 'text/html' } };
    }
    if (kind === 'empty') return { status: 200, raw: '' };
    const mangle = (value: unknown): unknown => {
      if (Array.isArray(value)) return value.map(mangle);
      if (value === null || typeof value !== 'object') return value;
      const copy: Record<string, unknown> = { ...(value as Record<string, unknown>) };
      if (kind === 'missing-fields') {
        delete copy['status'];
        for (const field of opts.idFields) delete copy[field];
      } else {
        copy['status'] = 12345;
        for (const field of opts.idFields) copy[field] = null;
      }
      return copy;
    };
    return { ...real, status: 200, json: mangle(real.json) };
  };

  const send = (res: http.ServerResponse, record: RecordedRequest<K>, answer: Answer): void => {
    record.status = answer.status;
    if (answer.status === 429) counts.rateLimited += 1;
    if (res.destroyed || res.headersSent) return;
    const headers: Record<string, string | number> = {};
    let payload: Buffer;
    if (answer.raw !== undefined) {
      payload = typeof answer.raw === 'string' ? Buffer.from(answer.raw) : answer.raw;
      headers['content-type'] = typeof answer.raw === 'string' ? 'text/plain; charset=utf-8' : 'application/octet-stream';
    } else if (answer.json !== undefined) {
      payload = Buffer.from(JSON.stringify(answer.json));
      headers['content-type'] = 'application/json';
    } else {
      payload = Buffer.alloc(0);
    }
    for (const [name, value] of Object.entries(answer.headers ?? {})) headers[name.toLowerCase()] = value;
    headers['content-length'] = payload.length;
    res.writeHead(answer.status, headers);
    res.end(payload);
  };

  const drop = (req: http.IncomingMessage, record: RecordedRequest<K>): void => {
    record.status = 0;
    req.socket.destroy();
  };

  const onRequest = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const arrivedAt = Date.now();
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBodyBytes) tooLarge = true;
      else chunks.push(chunk);
    }
    const url = new URL(req.url ?? '/', 'http://fake.invalid');
    const text = Buffer.concat(chunks).toString('utf8');
    let body: unknown;
    let jsonError = false;
    if (text.length > 0) {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
        jsonError = true;
      }
    }
    const method = req.method ?? 'GET';
    const record: RecordedRequest<K> = {
      seq: ++seq,
      at: arrivedAt,
      kind: opts.classify(method, url.pathname),
      method,
      path: url.pathname + url.search,
      pathname: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: req.headers,
      body,
      jsonError,
      faulted: false,
    };
    requests.push(record);
    counts.total += 1;
    counts[record.kind] += 1;
    if (tooLarge) return send(res, record, { status: 413, json: opts.defaultErrorBody(413) });

    const client = { ip: req.socket.remoteAddress ?? '' };
    const fault = takeFault(record);
    if (!fault) return send(res, record, await opts.handle(record, client));

    record.faulted = true;
    if (fault.delayMs) await sleep(fault.delayMs);
    if (closed) return drop(req, record);
    const rewrites = fault.rewrite !== undefined;
    const handled = fault.handled === true || rewrites || fault.delayAnswerMs !== undefined || (fault.malformed !== undefined && fault.malformed !== 'non-json' && fault.malformed !== 'empty');
    let answer: Answer | undefined = handled ? await opts.handle(record, client) : undefined;
    if (fault.delayAnswerMs) await sleep(fault.delayAnswerMs);
    if (fault.dropConnection) return drop(req, record);
    if (fault.malformed) {
      answer = malform(fault.malformed, answer ?? { status: 200 });
    } else if (rewrites) {
      const real = answer!;
      const replaced = fault.rewrite!(real.json);
      answer = typeof replaced === 'string' ? { status: fault.status ?? real.status, raw: replaced } : { status: fault.status ?? real.status, json: replaced };
    } else if (fault.body !== undefined) {
      const status = fault.status ?? 200;
      answer = typeof fault.body === 'string' ? { status, raw: fault.body } : { status, json: fault.body };
    } else if (fault.status !== undefined) {
      answer = { status: fault.status, json: opts.defaultErrorBody(fault.status) };
    } else {
      // Only a delay: answer normally.
      answer ??= await opts.handle(record, client);
    }
    send(res, record, { ...answer, headers: { ...answer.headers, ...fault.headers } });
  };

  const server = http.createServer((req, res) => {
    onRequest(req, res).catch((error: unknown) => {
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`fake server bug: ${String(error)}`);
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    counts,
    injectFault(spec) {
      faults.push({ spec, left: spec.times ?? 1 });
    },
    clearFaults() {
      faults.length = 0;
    },
    pendingFaults: () => faults.reduce((sum, fault) => sum + fault.left, 0),
    sleep,
    schedule,
    onClose(fn) {
      closers.push(fn);
    },
    get closed() {
      return closed;
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const entry of timers) {
        clearTimeout(entry.timer);
        entry.wake();
      }
      timers.clear();
      await Promise.all(closers.map((fn) => fn()));
      const done = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await done;
    },
  };
}

/** A sliding-window limiter per key: at most `requests` accepted in any `windowMs`. */
export class SlidingWindowLimiter {
  readonly requests: number;
  readonly windowMs: number;
  readonly #accepted = new Map<string, number[]>();

  constructor(requests: number, windowMs: number) {
    this.requests = requests;
    this.windowMs = windowMs;
  }

  /** Records and returns true when the request fits the window; false (not recorded) otherwise. */
  tryAcquire(key: string, now: number): boolean {
    const times = (this.#accepted.get(key) ?? []).filter((at) => at > now - this.windowMs);
    if (times.length >= this.requests) {
      this.#accepted.set(key, times);
      return false;
    }
    times.push(now);
    this.#accepted.set(key, times);
    return true;
  }
}

/** decodeURIComponent that never throws (a malformed escape is kept as is). */
export function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** FNV-1a 32-bit: a stable small hash for deterministic per-task choices. */
export function hashString(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** `Bearer <key>` → key; undefined when the header is missing or not a bearer token. */
export function bearerKey(headers: http.IncomingHttpHeaders): string | undefined {
  const match = /^Bearer\s+(\S.*)$/i.exec(headers.authorization ?? '');
  return match?.[1]?.trim();
}

/** Behaviour switches a chat e2e test can set from the prompt alone. */
export interface PromptMarkers {
  /** `[fail:CODE]`: the task fails with CODE. */
  failCode?: string;
  /** `[big]`: a noisy output PNG (4K ones exceed 10 MiB). */
  big: boolean;
  /** `[slow:MS]`: the task takes MS ms. */
  durationMs?: number;
  /** `[weird:MS]`: an undocumented status for MS ms after pending. */
  unknownStatusMs?: number;
  /** `[callback:twice|drop|delay=MS]` (RunBlob). */
  callback?: { mode?: 'once' | 'twice' | 'drop'; delayMs?: number };
}

export function parsePromptMarkers(prompt: string): PromptMarkers {
  const markers: PromptMarkers = { big: /\[big\]/i.test(prompt) };
  const fail = /\[fail:([A-Za-z0-9_.-]+)\]/.exec(prompt);
  if (fail?.[1]) markers.failCode = fail[1];
  const slow = /\[slow:(\d+)\]/.exec(prompt);
  if (slow?.[1]) markers.durationMs = Number(slow[1]);
  const weird = /\[weird:(\d+)\]/.exec(prompt);
  if (weird?.[1]) markers.unknownStatusMs = Number(weird[1]);
  const callback = /\[callback:(twice|drop|once|delay=(\d+))\]/.exec(prompt);
  if (callback?.[1]) {
    markers.callback = callback[2] ? { delayMs: Number(callback[2]) } : { mode: callback[1] as 'once' | 'twice' | 'drop' };
  }
  return markers;
}

/** The decided end of a task. */
export type FakeOutcome =
  | { status: 'succeeded' }
  | {
      status: 'failed';
      /** Runbase: error.code; RunBlob: the `message` code (e.g. MODERATION_FAILED). */
      code: string;
      /** Runbase: error.message (default "Generation failed: CODE"). */
      message?: string;
      /** Runbase: send `error` as a plain string instead of {message, code}. */
      errorAs?: 'object' | 'string';
    };

/** Default outcome: fail when the prompt carries `[fail:CODE]`, succeed otherwise. */
export function outcomeFromPrompt(info: { prompt: string }): FakeOutcome {
  const { failCode } = parsePromptMarkers(info.prompt);
  return failCode ? { status: 'failed', code: failCode } : { status: 'succeeded' };
}

/** Default task duration: 50–150 ms, deterministic from the task id. */
export function defaultDurationMs(taskId: string): number {
  return 50 + (hashString(taskId) % 101);
}

export function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

export interface ReferenceFetch {
  url: string;
  ok: boolean;
  status?: number;
  bytes?: number;
  contentType?: string;
  error?: string;
  at: number;
}

/** Fetches a reference the way a provider would (used when `fetchReferences` is on). */
export async function fetchReference(url: string, timeoutMs: number): Promise<ReferenceFetch & { data?: Buffer }> {
  const at = Date.now();
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const data = Buffer.from(await response.arrayBuffer());
    const contentType = response.headers.get('content-type') ?? undefined;
    return { url, ok: response.ok, status: response.status, bytes: data.length, ...(contentType ? { contentType } : {}), at, data };
  } catch (error) {
    return { url, ok: false, error: String(error), at };
  }
}
