import { ValidationError } from '../../src/engine/errors.ts';

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
