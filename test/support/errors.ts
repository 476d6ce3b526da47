import { ValidationError } from '../../src/engine/errors.ts';
import { BotError } from '../../src/errors.ts';

/** The ValidationError `fn` throws (so a test can read its user sentence); fails when it throws none or another error. */
export function refusal(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ValidationError) return err;
    throw err;
  }
  throw new Error('expected a ValidationError');
}

/** The BotError `fn` throws (any refusal from the catalogue); fails when it throws none or another error. */
export function botRefusal(fn: () => unknown): BotError {
  try {
    fn();
  } catch (err) {
    if (err instanceof BotError) return err;
    throw err;
  }
  throw new Error('expected a BotError');
}
