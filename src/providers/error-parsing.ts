/**
 * Builds provider errors (errors.ts) from what the providers send: non-2xx answers in every shape
 * they are known to use, transport failures, and failed tasks' reasons.
 */
import type { ProviderName } from './types.ts';
import {
  AuthenticationError,
  InsufficientCreditsError,
  InvalidRequestError,
  KeyPolicyError,
  MalformedResponseError,
  ProviderError,
  ProviderNetworkError,
  ProviderServerError,
  RateLimitedError,
  TASK_FAILURE_CODES,
  TaskFailedError,
  TaskNotFoundError,
  type ProviderErrorInit,
} from './errors.ts';
const PROVIDER_LABELS: Record<ProviderName, string> = { runbase: 'Runbase', runblob: 'RunBlob' };

/** How much of an error body ends up in a message (bodies can be whole HTML pages). */
const MAX_DETAIL_CHARS = 300;

type ProviderErrorClass = new (init: ProviderErrorInit) => ProviderError;

/**
 * Provider codes that decide the class whatever the HTTP status (docs/providers.md "Errors": "branch on
 * error.code, not on the status alone: a 429 can be permanent"). Keys are lower case.
 */
const CLASS_BY_CODE: Record<string, ProviderErrorClass> = {
  // Runbase 400
  invalid_json: InvalidRequestError,
  missing_model: InvalidRequestError,
  missing_input: InvalidRequestError,
  invalid_input: InvalidRequestError,
  model_not_found: InvalidRequestError,
  // Runbase 401
  missing_api_key: AuthenticationError,
  invalid_api_key: AuthenticationError,
  // Runbase 402, RunBlob 402
  insufficient_balance: InsufficientCreditsError,
  insufficient_credits: InsufficientCreditsError,
  // Runbase 403
  api_key_spend_limit_exceeded: KeyPolicyError,
  ip_not_allowed: KeyPolicyError,
  // Runbase 404
  run_not_found: TaskNotFoundError,
  // Runbase 429: one transient, one permanent
  rate_limited: RateLimitedError,
  usage_exceeded: KeyPolicyError,
};

function classByStatus(status: number): ProviderErrorClass {
  if (status === 400 || status === 422) return InvalidRequestError;
  if (status === 401) return AuthenticationError;
  if (status === 402) return InsufficientCreditsError;
  if (status === 403) return KeyPolicyError;
  if (status === 404) return TaskNotFoundError;
  // No documented code: a 429 is the provider turning the request away, so it did not land.
  if (status === 429) return RateLimitedError;
  if (status >= 500) return ProviderServerError;
  if (status >= 400) return InvalidRequestError;
  // 1xx/3xx: not an answer the documented APIs give (redirects are not followed).
  return MalformedResponseError;
}

/** An UPPER_SNAKE token such as INSUFFICIENT_CREDITS: RunBlob puts codes in free-text fields. */
const CODE_LIKE = /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$|^[A-Z]{4,}$/;

export type HttpHeaders = Readonly<Record<string, string | string[] | undefined>>;

interface ParsedErrorBody {
  code: string | undefined;
  detail: string;
  fields: string[];
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined);

function oneLine(text: string): string {
  const flat = text
    .replace(/<script[\s\S]*?<\/script>|<style[\s\S]*?<\/style>/gi, ' ')
    .replace(/<[^>]*>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return flat.length > MAX_DETAIL_CHARS ? `${flat.slice(0, MAX_DETAIL_CHARS)}…` : flat;
}

/** RunBlob 422: `{"detail": [{"loc": ["body", "prompt"], "msg": "…", "type": "…"}]}`. */
function parseValidationDetail(items: unknown[]): ParsedErrorBody {
  const fields: string[] = [];
  const parts: string[] = [];
  for (const item of items) {
    if (!isRecord(item)) continue;
    const loc = Array.isArray(item.loc) ? item.loc.map(String) : [];
    // "body" (or "query"/"path") only says where FastAPI looked; the rest is the field.
    const path = (['body', 'query', 'path'].includes(loc[0] ?? '') ? loc.slice(1) : loc).join('.');
    if (path) fields.push(path);
    const msg = str(item.msg) ?? str(item.type) ?? 'invalid';
    parts.push(path ? `${path}: ${msg}` : msg);
  }
  // A validator message may name an image problem (e.g. "Value error, IMAGE_TOO_LARGE: …"); keep it as the code.
  const named = failureCodeFromText(parts.join(' '));
  const code = named === 'GENERATION_FAILED' || CLASS_BY_CODE[named.toLowerCase()] ? undefined : named;
  return { code, detail: parts.length ? `invalid ${fields.length ? 'fields' : 'request'}: ${parts.join('; ')}` : 'invalid request', fields };
}

/** Reads every error shape the two providers are known to send, and anything else without throwing. */
export function parseErrorBody(body: unknown): ParsedErrorBody {
  let json: unknown = body;
  if (typeof body === 'string') {
    const text = body.trim();
    if (text === '') return { code: undefined, detail: 'empty body', fields: [] };
    try {
      json = JSON.parse(text);
    } catch {
      return { code: undefined, detail: oneLine(text), fields: [] };
    }
  }
  if (!isRecord(json)) {
    if (json === null || json === undefined) return { code: undefined, detail: 'empty body', fields: [] };
    return { code: undefined, detail: oneLine(typeof json === 'string' ? json : JSON.stringify(json)), fields: [] };
  }
  // Runbase: {"error": {"message", "code"}}
  if (isRecord(json.error)) {
    const code = str(json.error.code);
    const message = str(json.error.message);
    return { code, detail: oneLine(message ?? code ?? JSON.stringify(json.error)), fields: [] };
  }
  // RunBlob 422
  if (Array.isArray(json.detail)) return parseValidationDetail(json.detail);
  // RunBlob: {"detail": "…"}, {"success": false, "message": "…"}, {"error": "Unauthorized", "message": "…"}
  const texts = [str(json.detail), str(json.error), str(json.message), str(json.code)].filter((t): t is string => !!t);
  const code = str(json.code) ?? texts.find((t) => CODE_LIKE.test(t));
  const detail = texts.length ? oneLine([...new Set(texts)].join(': ')) : oneLine(JSON.stringify(json));
  return { code, detail, fields: [] };
}

function headerValue(headers: HttpHeaders, name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() !== wanted) continue;
    return Array.isArray(v) ? v[0] : v;
  }
  return undefined;
}

/** `Retry-After` as seconds: either delta-seconds or an HTTP date. Undefined when absent or unreadable. */
export function parseRetryAfterS(value: string | undefined, nowMs: number = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, (at - nowMs) / 1000);
}

/**
 * Builds the error for a non-2xx answer. `body` is the raw text (or already-parsed JSON); every
 * shape is parsed defensively (JSON envelopes, FastAPI details, plain text, HTML, nothing).
 */
export function providerErrorFromResponse(
  provider: ProviderName,
  status: number,
  body: unknown,
  headers: HttpHeaders = {},
  nowMs: number = Date.now(),
): ProviderError {
  const parsed = parseErrorBody(body);
  const Cls = (parsed.code && CLASS_BY_CODE[parsed.code.toLowerCase()]) || classByStatus(status);
  const message = `${PROVIDER_LABELS[provider]} answered HTTP ${status}${parsed.code ? ` ${parsed.code}` : ''}: ${parsed.detail}`;
  const init: ProviderErrorInit = {
    provider,
    providerCode: parsed.code,
    status,
    message,
    retryAfterS: parseRetryAfterS(headerValue(headers, 'retry-after'), nowMs),
  };
  // A 408 means the provider gave up waiting for our request: a transport-level failure whose
  // request may still have been read, so it is retried only for idempotent calls.
  if (status === 408 && !parsed.code) return new ProviderNetworkError({ ...init, notSent: false });
  if (Cls === InvalidRequestError) return new InvalidRequestError({ ...init, fields: parsed.fields });
  return new Cls(init);
}

/** Error codes where the request surely never reached the provider (no connection, no TLS session). */
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
]);

/** Transport failures after the connection was made: the request may have landed. */
const MAYBE_SENT_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'HPE_INVALID_CONSTANT',
  'HPE_INVALID_CHUNK_SIZE',
  'UND_ERR_RESPONSE_STATUS_CODE',
]);

/** The errno-style codes on an error, its cause and (Happy Eyeballs) its AggregateError members. */
function transportCodes(err: unknown, depth = 0): string[] {
  if (!isRecord(err) && !(err instanceof Error)) return [];
  if (depth > 3) return [];
  const e = err as { code?: unknown; cause?: unknown; errors?: unknown };
  const own = typeof e.code === 'string' ? [e.code] : [];
  const nested = [e.cause, ...(Array.isArray(e.errors) ? e.errors : [])].flatMap((x) => transportCodes(x, depth + 1));
  return [...own, ...nested];
}

/** Whether `err` (any thrown value) is a transport failure, and whether the request surely never left. */
export function classifyTransportFailure(err: unknown): { network: boolean; notSent: boolean; code: string | undefined } {
  if (err instanceof ProviderNetworkError) return { network: true, notSent: err.notSent, code: err.providerCode };
  if (err instanceof ProviderError) return { network: false, notSent: false, code: err.providerCode };
  const codes = transportCodes(err);
  const notSentCode = codes.find((c) => NOT_SENT_CODES.has(c));
  const sentCode = codes.find((c) => MAYBE_SENT_CODES.has(c));
  // Any sign that the connection was up wins: then the request may have landed.
  if (sentCode) return { network: true, notSent: false, code: sentCode };
  if (notSentCode) return { network: true, notSent: true, code: notSentCode };
  return { network: false, notSent: false, code: codes[0] };
}

/** Wraps a transport failure (refused, reset, DNS, TLS, timeout) of a request to `provider`. */
export function providerErrorFromNetwork(provider: ProviderName, err: unknown): ProviderNetworkError {
  const { notSent, code } = classifyTransportFailure(err);
  const reason = err instanceof Error ? err.message : String(err);
  return new ProviderNetworkError({
    provider,
    providerCode: code,
    message: `${PROVIDER_LABELS[provider]} could not be reached${code ? ` (${code})` : ''}: ${oneLine(reason)}`,
    notSent,
    cause: err,
  });
}

/** The code a failed task's free-text reason stands for: a known code it names, else GENERATION_FAILED. */
export function failureCodeFromText(text: string | undefined): string {
  if (!text) return 'GENERATION_FAILED';
  const trimmed = text.trim();
  if (CODE_LIKE.test(trimmed)) return trimmed;
  const upper = trimmed.toUpperCase();
  const known = Object.keys(TASK_FAILURE_CODES).find((code) => new RegExp(`\\b${code}\\b`).test(upper));
  return known ?? 'GENERATION_FAILED';
}

/** The error for a task that ended `failed` (TaskSnapshot.failure), for the engine to throw or record. */
export function taskFailedError(provider: ProviderName, failure: { code: string; message: string }): TaskFailedError {
  return new TaskFailedError({
    provider,
    failureCode: failure.code,
    message: `${PROVIDER_LABELS[provider]} task failed: ${failure.code}${failure.message && failure.message !== failure.code ? `: ${failure.message}` : ''}`,
  });
}
