/**
 * Errors that only arise while the engine runs or resumes a job, and the conversion of any error
 * into the JobError stored on a task or job.
 */
import { BotError, errorCode, toUserMessage } from '../errors.ts';
import type { JobError } from './job.ts';

/**
 * The process stopped between sending a create request and recording the provider's task id, so
 * whether the provider made (and charged) the task is unknown. Re-sending could charge twice, so
 * the task is given up and its quota refunded.
 */
export class SubmissionUnknownError extends BotError<'SUBMISSION_UNKNOWN'> {
  readonly code = 'SUBMISSION_UNKNOWN';
  constructor() {
    super('the bot stopped while submitting this task; its provider task id was never recorded');
    this.name = 'SubmissionUnknownError';
  }
  protected get sentenceParams() {
    return {};
  }
}

/** A resumed job's provider (or model) is no longer configured. */
export class ProviderUnavailableError extends BotError<'PROVIDER_NOT_CONFIGURED'> {
  readonly code = 'PROVIDER_NOT_CONFIGURED';
  constructor(detail: string) {
    super(detail);
    this.name = 'ProviderUnavailableError';
  }
  protected get sentenceParams() {
    return {};
  }
}

/**
 * The requester (or a Discord member who can manage messages) canceled the job. Stops its tasks:
 * one not yet accepted by the provider is never sent (refunded); one already accepted is paid
 * for at the provider, so its units stay charged and its image is not fetched or posted
 * (docs/architecture.md "Cancel").
 */
export class JobCanceledError extends BotError<'CANCELED'> {
  readonly code = 'CANCELED';
  constructor() {
    super('the job was canceled');
    this.name = 'JobCanceledError';
  }
  protected get sentenceParams() {
    return {};
  }
}

/** close() stopped the job; it stays in the store and resumes on the next start. */
export class EngineClosedError extends Error {
  readonly code = 'ENGINE_CLOSED';
  constructor() {
    super('the engine was closed; the job resumes on the next start');
    this.name = 'EngineClosedError';
  }
}

/** Another process took this job's lease (it stopped renewing in time). */
export class LeaseLostError extends Error {
  readonly code = 'LEASE_LOST';
  constructor() {
    super('lost the lease on this job to another process');
    this.name = 'LeaseLostError';
  }
}

export function toJobError(err: unknown): JobError {
  const detail = err instanceof Error ? err.message : String(err);
  return { code: errorCode(err), userMessage: toUserMessage(err), detail };
}
