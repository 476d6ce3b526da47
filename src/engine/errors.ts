/**
 * Errors the engine raises before or while running a job. Each carries a stable code and the
 * sentence the chat user sees (see src/errors.ts for the root class).
 */
import { BotError } from '../errors.ts';

const fmtUtc = (ms: number) => new Date(ms).toISOString().slice(11, 16) + ' UTC';

/** A request that cannot be run as given (bad option, unsupported combination). */
export class ValidationError extends BotError {
  readonly code = 'INVALID_REQUEST';
  /** The option at fault (prompt, model, ratio, resolution, count, creativity, references). */
  readonly field: string;
  readonly sentence: string;
  constructor(field: string, sentence: string) {
    super(`${field}: ${sentence}`);
    this.name = 'ValidationError';
    this.field = field;
    this.sentence = sentence;
  }
  get userMessage() {
    return this.sentence;
  }
}

export type ReferenceProblem =
  | 'not_an_image' // content is not JPEG/PNG/WEBP
  | 'too_large' // over 20 MB
  | 'too_many' // more than the model takes
  | 'unreachable' // could not be downloaded
  | 'forbidden_address' // SSRF guard: loopback/private/link-local, or not https
  | 'needs_public_url'; // Runbase needs a URL, and PUBLIC_URL is not set

const REFERENCE_SENTENCES: Record<ReferenceProblem, (label: string, detail: string) => string> = {
  not_an_image: (l) => `${l} is not a JPEG, PNG or WEBP image. Attach one of those formats.`,
  too_large: (l, d) => `${l} is larger than 20 MB${d ? ` (${d})` : ''}. Use a smaller image.`,
  too_many: (_l, d) => `Too many reference images: ${d}. Remove some and try again.`,
  unreachable: (l, d) => `${l} could not be downloaded${d ? ` (${d})` : ''}. Check the link, or attach the file instead.`,
  forbidden_address: (l) => `${l} must be a public https:// link. Attach the file instead, or use a public link.`,
  needs_public_url: (l) =>
    `${l} cannot be sent to this model: Runbase only takes links, and the bot has no public address. Use a RunBlob model, give a public https:// link, or ask the bot's operator to set PUBLIC_URL.`,
};

/** A reference image that cannot be used. `index` is 0-based; the sentence names it ("Image 2"). */
export class ReferenceError extends BotError {
  readonly code: string;
  readonly index: number;
  readonly problem: ReferenceProblem;
  readonly detail: string;
  readonly label: string;
  constructor(index: number, problem: ReferenceProblem, detail = '', name?: string) {
    const label = `Reference image ${index + 1}${name ? ` (${name})` : ''}`;
    super(`${label}: ${problem}${detail ? `: ${detail}` : ''}`);
    this.name = 'ReferenceError';
    this.code = `REFERENCE_${problem.toUpperCase()}`;
    this.index = index;
    this.problem = problem;
    this.detail = detail;
    this.label = label;
  }
  get userMessage() {
    return REFERENCE_SENTENCES[this.problem](this.label, this.detail);
  }
}

/** The user's daily allowance cannot cover this request. */
export class QuotaExceededError extends BotError {
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
  get userMessage() {
    const unit = (n: number) => `${n} unit${n === 1 ? '' : 's'}`;
    return `You're out of image quota for today: this needs ${unit(this.needed)} and you have ${unit(this.left)} left. It resets at ${fmtUtc(this.resetsAt)}; try fewer images or a lower resolution.`;
  }
}

/** The bot-wide daily spending cap (SPEND_CAP_DAILY_USD) is reached. */
export class SpendCapError extends BotError {
  readonly code = 'SPEND_CAP_REACHED';
  readonly resetsAt: number;
  constructor(resetsAt: number) {
    super('daily spend cap reached');
    this.name = 'SpendCapError';
    this.resetsAt = resetsAt;
  }
  get userMessage() {
    return `The bot has reached its daily spending cap. New images are possible again after ${fmtUtc(this.resetsAt)}.`;
  }
}

/** The job did not finish before its deadline (JOB_DEADLINE_SECONDS). */
export class DeadlineExceededError extends BotError {
  readonly code = 'DEADLINE_EXCEEDED';
  readonly minutes: number;
  constructor(minutes: number) {
    super(`job deadline of ${minutes} min exceeded`);
    this.name = 'DeadlineExceededError';
    this.minutes = minutes;
  }
  get userMessage() {
    return `The image service did not finish within ${this.minutes} minutes. Please try again; your quota was refunded.`;
  }
}

/** A result image could not be downloaded or was not a valid image. */
export class ResultDownloadError extends BotError {
  readonly code = 'RESULT_DOWNLOAD_FAILED';
  constructor(detail: string) {
    super(detail);
    this.name = 'ResultDownloadError';
  }
  get userMessage() {
    return 'The image was made but could not be downloaded from the image service. Please try again; your quota was refunded.';
  }
}

/** A button refers to a job the store no longer has. */
export class JobNotFoundError extends BotError {
  readonly code = 'JOB_NOT_FOUND';
  constructor(jobId: string) {
    super(`job ${jobId} not found`);
    this.name = 'JobNotFoundError';
  }
  get userMessage() {
    return 'This image is too old or was deleted, so its buttons no longer work. Run /imagine again.';
  }
}
