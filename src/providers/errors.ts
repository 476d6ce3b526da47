/**
 * One error hierarchy for both providers. Each class has a stable code (its sentence is in the
 * catalogue, src/errors.ts) and tells whether a retry can help. Built from HTTP answers, transport
 * failures and failed tasks by the factories in error-parsing.ts. Whether to retry is decided in
 * one place: retry.ts.
 */
import { BotError, sentenceFor, type ErrorCode } from '../errors.ts';
import type { ProviderName } from './types.ts';

export interface ProviderErrorInit {
  provider: ProviderName;
  /** The provider's own code (e.g. RATE_LIMITED, insufficient_balance, MODERATION_FAILED). */
  providerCode?: string | undefined;
  status?: number | undefined;
  message: string;
  /** Seconds to wait, when the provider said so (Retry-After). */
  retryAfterS?: number | undefined;
  cause?: unknown;
}

/** The codes provider failures map to: a closed set, each with its sentence in the catalogue. */
export type ProviderErrorCode = Extract<ErrorCode, `PROVIDER_${string}` | `TASK_${string}`>;

export abstract class ProviderError extends BotError<ProviderErrorCode> {
  readonly provider: ProviderName;
  readonly providerCode: string | undefined;
  readonly status: number | undefined;
  readonly retryAfterS: number | undefined;
  /** Whether repeating the same request may succeed (transient). */
  abstract readonly retryable: boolean;
  constructor(init: ProviderErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.provider = init.provider;
    this.providerCode = init.providerCode;
    this.status = init.status;
    this.retryAfterS = init.retryAfterS;
  }
  protected get sentenceParams() {
    return {};
  }
}

/** 400/422: the provider refused the request's content (our bug or an unsupported combination). */
export class InvalidRequestError extends ProviderError {
  readonly code = 'PROVIDER_INVALID_REQUEST';
  readonly retryable = false;
  /** The request fields the provider named (RunBlob's 422 `detail[].loc`), when it did. */
  readonly fields: readonly string[];
  constructor(init: ProviderErrorInit & { fields?: readonly string[] }) {
    super(init);
    this.fields = init.fields ?? [];
  }
}

/** 401: missing, invalid or disabled API key. */
export class AuthenticationError extends ProviderError {
  readonly code = 'PROVIDER_AUTH';
  readonly retryable = false;
}

/** 402 / INSUFFICIENT_CREDITS: the operator's account is out of credit. */
export class InsufficientCreditsError extends ProviderError {
  readonly code = 'PROVIDER_NO_CREDITS';
  readonly retryable = false;
}

/** 403 (key spend limit, IP allow-list) and 429 USAGE_EXCEEDED: the key's policy forbids more work. Permanent. */
export class KeyPolicyError extends ProviderError {
  readonly code = 'PROVIDER_KEY_POLICY';
  readonly retryable = false;
}

/** 404: the task or run is unknown (expired, or another account's). */
export class TaskNotFoundError extends ProviderError {
  readonly code = 'PROVIDER_NOT_FOUND';
  readonly retryable = false;
}

/** 429 RATE_LIMITED (Runbase) or any 429 without a permanent code: transient. */
export class RateLimitedError extends ProviderError {
  readonly code = 'PROVIDER_RATE_LIMITED';
  readonly retryable = true;
}

/** 5xx: the provider failed. Transient. */
export class ProviderServerError extends ProviderError {
  readonly code = 'PROVIDER_SERVER_ERROR';
  readonly retryable = true;
}

/** Connection refused/reset, DNS, TLS, or a request timeout. */
export class ProviderNetworkError extends ProviderError {
  readonly code = 'PROVIDER_UNREACHABLE';
  readonly retryable = true;
  /** True when the request surely never reached the provider (connection refused): billable creates may retry. */
  readonly notSent: boolean;
  constructor(init: ProviderErrorInit & { notSent?: boolean }) {
    super(init);
    this.notSent = init.notSent ?? false;
  }
}

/** A 2xx answer whose body did not match the documented schema. */
export class MalformedResponseError extends ProviderError {
  readonly code = 'PROVIDER_MALFORMED_RESPONSE';
  readonly retryable = false;
}

/**
 * The task-level failure codes the providers report in a failed task (RunBlob `message`, Runbase
 * `error.code`; docs/providers.md "Errors") and the bot's code for each. Any other reason is
 * TASK_FAILED.
 */
export const TASK_FAILURE_CODES = {
  MODERATION_FAILED: 'TASK_MODERATION_FAILED',
  INSUFFICIENT_CREDITS: 'PROVIDER_NO_CREDITS',
  INVALID_IMAGE: 'TASK_INVALID_IMAGE',
  IMAGE_TOO_LARGE: 'TASK_IMAGE_TOO_LARGE',
  UNSUPPORTED_IMAGE_FORMAT: 'TASK_UNSUPPORTED_IMAGE_FORMAT',
  TIMEOUT: 'TASK_TIMEOUT',
} as const satisfies Record<string, ProviderErrorCode>;
export type KnownTaskFailure = keyof typeof TASK_FAILURE_CODES;

/** The sentence for each known task failure (from the catalogue), keyed by the provider's code. */
export const TASK_FAILURE_SENTENCES: Readonly<Record<string, string>> = Object.fromEntries(
  Object.entries(TASK_FAILURE_CODES).map(([failure, code]) => [failure, sentenceFor(code, {})]),
) as Record<KnownTaskFailure, string>;

const isKnownTaskFailure = (code: string): code is KnownTaskFailure => Object.hasOwn(TASK_FAILURE_CODES, code);

/** A task that ended with status failed; `providerCode` keeps the provider's own reason. */
export class TaskFailedError extends ProviderError {
  readonly code: ProviderErrorCode;
  readonly retryable = false;
  constructor(init: ProviderErrorInit & { failureCode: string }) {
    super({ ...init, providerCode: init.failureCode });
    const known = init.failureCode.toUpperCase();
    this.code = isKnownTaskFailure(known) ? TASK_FAILURE_CODES[known] : 'TASK_FAILED';
  }
}
