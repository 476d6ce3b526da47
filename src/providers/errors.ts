/**
 * One error hierarchy for both providers. Each class has a stable `code` family, tells whether a
 * retry can help, and maps to one sentence a chat user can act on. Built from HTTP answers by
 * `providerErrorFromResponse` (see http.ts) and from failed tasks by `taskFailedError`.
 */
import { BotError } from '../errors.ts';
import type { ProviderName } from '../engine/models.ts';

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

export abstract class ProviderError extends BotError {
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
}

/** 400/422: the provider refused the request's content (our bug or an unsupported combination). */
export class InvalidRequestError extends ProviderError {
  readonly code = 'PROVIDER_INVALID_REQUEST';
  readonly retryable = false;
  get userMessage() {
    return 'The image service refused these options. Try another model, ratio or resolution, or fewer reference images.';
  }
}

/** 401: missing, invalid or disabled API key. */
export class AuthenticationError extends ProviderError {
  readonly code = 'PROVIDER_AUTH';
  readonly retryable = false;
  get userMessage() {
    return "The bot's API key for the image service was refused. The bot's operator must check the key.";
  }
}

/** 402 / INSUFFICIENT_CREDITS: the operator's account is out of credit. */
export class InsufficientCreditsError extends ProviderError {
  readonly code = 'PROVIDER_NO_CREDITS';
  readonly retryable = false;
  get userMessage() {
    return "The image service account is out of credits. The bot's operator must top up credits; your quota was refunded.";
  }
}

/** 403 (key spend limit, IP allow-list) and 429 USAGE_EXCEEDED: the key's policy forbids more work. Permanent. */
export class KeyPolicyError extends ProviderError {
  readonly code = 'PROVIDER_KEY_POLICY';
  readonly retryable = false;
  get userMessage() {
    return "The bot's API key has reached its spending or usage limit, or is not allowed from this server. The bot's operator must raise the limit; your quota was refunded.";
  }
}

/** 404: the task or run is unknown (expired, or another account's). */
export class TaskNotFoundError extends ProviderError {
  readonly code = 'PROVIDER_NOT_FOUND';
  readonly retryable = false;
  get userMessage() {
    return 'The image service lost track of this job. Please run it again; your quota was refunded.';
  }
}

/** 429 RATE_LIMITED (Runbase) or any 429 without a permanent code: transient. */
export class RateLimitedError extends ProviderError {
  readonly code = 'PROVIDER_RATE_LIMITED';
  readonly retryable = true;
  get userMessage() {
    return 'The image service is busy right now. Please try again in a minute; your quota was refunded.';
  }
}

/** 5xx: the provider failed. Transient. */
export class ProviderServerError extends ProviderError {
  readonly code = 'PROVIDER_SERVER_ERROR';
  readonly retryable = true;
  get userMessage() {
    return 'The image service had an internal error. Please try again in a few minutes; your quota was refunded.';
  }
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
  get userMessage() {
    return 'The image service could not be reached. Please try again in a few minutes; your quota was refunded.';
  }
}

/** A 2xx answer whose body did not match the documented schema. */
export class MalformedResponseError extends ProviderError {
  readonly code = 'PROVIDER_MALFORMED_RESPONSE';
  readonly retryable = false;
  get userMessage() {
    return 'The image service sent an answer the bot could not read. Please try again later; your quota was refunded.';
  }
}

/** Task-level failure codes reported in a failed task (RunBlob `message`, Runbase `error.code`). */
export const TASK_FAILURE_SENTENCES: Record<string, string> = {
  MODERATION_FAILED:
    'The image service refused this prompt or image under its content policy. Rephrase the prompt or use other reference images; your quota was refunded.',
  INSUFFICIENT_CREDITS:
    "The image service account is out of credits. The bot's operator must top up credits; your quota was refunded.",
  INVALID_IMAGE:
    'The image service could not read one of the reference images. Try a different JPEG, PNG or WEBP file; your quota was refunded.',
  IMAGE_TOO_LARGE:
    'A reference image is too large for the image service (20 MB at most). Use a smaller file; your quota was refunded.',
  UNSUPPORTED_IMAGE_FORMAT:
    'A reference image is in a format the image service does not take. Use JPEG, PNG or WEBP; your quota was refunded.',
  TIMEOUT: 'The image service timed out while generating. Please try again; your quota was refunded.',
};

/** A task that ended with status failed. */
export class TaskFailedError extends ProviderError {
  readonly code: string;
  readonly retryable = false;
  constructor(init: ProviderErrorInit & { failureCode: string }) {
    super({ ...init, providerCode: init.failureCode });
    this.code = `TASK_${init.failureCode.toUpperCase()}`;
  }
  get userMessage() {
    const code = (this.providerCode ?? '').toUpperCase();
    return (
      TASK_FAILURE_SENTENCES[code] ??
      'The image service could not make this image. Try rephrasing the prompt or changing the options; your quota was refunded.'
    );
  }
}
