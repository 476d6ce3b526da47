/**
 * Errors the engine raises before or while running a job. Each carries a stable code and the
 * values of its sentence; the sentences are in the catalogue (src/errors.ts).
 */
import { BotError, type SentenceParams } from '../errors.ts';

/** A request that cannot be run as given (bad option, unsupported combination). */
export class ValidationError extends BotError<'INVALID_REQUEST'> {
  readonly code = 'INVALID_REQUEST';
  /** The option at fault (prompt, model, ratio, resolution, count, creativity, references). */
  readonly field: string;
  /** Built from the option's definition, so it names what was typed and what is allowed. */
  readonly sentence: string;
  constructor(field: string, sentence: string) {
    super(`${field}: ${sentence}`);
    this.name = 'ValidationError';
    this.field = field;
    this.sentence = sentence;
  }
  protected get sentenceParams() {
    return { sentence: this.sentence };
  }
}

export const REFERENCE_PROBLEMS = [
  'not_an_image', // content is not JPEG/PNG/WEBP
  'too_large', // over 20 MB
  'too_many', // more than the model takes
  'unreachable', // could not be downloaded
  'forbidden_address', // SSRF guard: loopback/private/link-local, or not https
  'needs_public_url', // Runbase needs a URL, and PUBLIC_URL is not set
] as const;
export type ReferenceProblem = (typeof REFERENCE_PROBLEMS)[number];
type ReferenceCode = `REFERENCE_${Uppercase<ReferenceProblem>}`;

/** A reference image that cannot be used. `index` is 0-based; the sentence names it ("Reference image 2"). */
export class ReferenceError extends BotError<ReferenceCode> {
  readonly code: ReferenceCode;
  readonly index: number;
  readonly problem: ReferenceProblem;
  readonly detail: string;
  readonly label: string;
  constructor(index: number, problem: ReferenceProblem, detail = '', name?: string) {
    const label = `Reference image ${index + 1}${name ? ` (${name})` : ''}`;
    super(`${label}: ${problem}${detail ? `: ${detail}` : ''}`);
    this.name = 'ReferenceError';
    this.code = `REFERENCE_${problem.toUpperCase() as Uppercase<ReferenceProblem>}`;
    this.index = index;
    this.problem = problem;
    this.detail = detail;
    this.label = label;
  }
  protected get sentenceParams(): SentenceParams<ReferenceCode> {
    return { label: this.label, detail: this.detail };
  }
}

/** The user's daily allowance cannot cover this request. */
export class QuotaExceededError extends BotError<'QUOTA_EXCEEDED'> {
  readonly code = 'QUOTA_EXCEEDED';
  readonly needed: number;
  readonly left: number;
  readonly resetsAt: number;
  constructor(needed: number, left: number, resetsAt: number) {
    super(`quota exceeded: need ${needed}, ${left} left`);
    this.name = 'QuotaExceededError';
    this.needed = needed;
    this.left = left;
    this.resetsAt = resetsAt;
  }
  protected get sentenceParams() {
    return { needed: this.needed, left: this.left, resetsAt: this.resetsAt };
  }
}

/** The bot-wide daily spending cap (SPEND_CAP_DAILY_USD) is reached. */
export class SpendCapError extends BotError<'SPEND_CAP_REACHED'> {
  readonly code = 'SPEND_CAP_REACHED';
  readonly resetsAt: number;
  constructor(resetsAt: number) {
    super('daily spend cap reached');
    this.name = 'SpendCapError';
    this.resetsAt = resetsAt;
  }
  protected get sentenceParams() {
    return { resetsAt: this.resetsAt };
  }
}

/** The job did not finish before its deadline (JOB_DEADLINE_SECONDS). */
export class DeadlineExceededError extends BotError<'DEADLINE_EXCEEDED'> {
  readonly code = 'DEADLINE_EXCEEDED';
  readonly minutes: number;
  constructor(minutes: number) {
    super(`job deadline of ${minutes} min exceeded`);
    this.name = 'DeadlineExceededError';
    this.minutes = minutes;
  }
  protected get sentenceParams() {
    return { minutes: this.minutes };
  }
}

/** A result image could not be downloaded or was not a valid image. */
export class ResultDownloadError extends BotError<'RESULT_DOWNLOAD_FAILED'> {
  readonly code = 'RESULT_DOWNLOAD_FAILED';
  constructor(detail: string) {
    super(detail);
    this.name = 'ResultDownloadError';
  }
  protected get sentenceParams() {
    return {};
  }
}

/** A button refers to a job the store no longer has. */
export class JobNotFoundError extends BotError<'JOB_NOT_FOUND'> {
  readonly code = 'JOB_NOT_FOUND';
  constructor(jobId: string) {
    super(`job ${jobId} not found`);
    this.name = 'JobNotFoundError';
  }
  protected get sentenceParams() {
    return {};
  }
}

/** A server's own daily USD cap (ServerSettings.spendCapUsd) is reached; the global one may not be. */
export class ServerSpendCapError extends BotError<'SERVER_SPEND_CAP_REACHED'> {
  readonly code = 'SERVER_SPEND_CAP_REACHED';
  readonly resetsAt: number;
  constructor(resetsAt: number) {
    super('server daily spend cap reached');
    this.name = 'ServerSpendCapError';
    this.resetsAt = resetsAt;
  }
  protected get sentenceParams() {
    return { resetsAt: this.resetsAt };
  }
}
