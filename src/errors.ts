/**
 * The root of every error the bot explains to a chat user. Errors carry a stable `code` (branch
 * on it or on the class, never on message text) and one `userMessage`: a sentence that says what
 * happened and what to do. Provider errors live in src/providers/errors.ts, engine errors in
 * src/engine/errors.ts; both extend this.
 */
export abstract class BotError extends Error {
  abstract readonly code: string;
  /** One sentence for the chat user: what happened and what to do. */
  abstract get userMessage(): string;
}

const GENERIC = 'Something went wrong on our side while making your image. Please try again in a minute.';

/** The single place that turns any thrown value into the sentence a user sees. */
export function toUserMessage(err: unknown): string {
  if (err instanceof BotError) return err.userMessage;
  return GENERIC;
}

export function errorCode(err: unknown): string {
  if (err instanceof BotError) return err.code;
  return 'INTERNAL';
}
