import { ValidationError } from '../../src/engine/errors.ts';
import { BotError } from '../../src/errors.ts';

/** The error of class `cls` that `fn` throws (so a test can read its user sentence); fails when it throws none or another error. */
function thrown<E extends Error>(fn: () => unknown, cls: abstract new (...args: never[]) => E): E {
  try {
    fn();
  } catch (err) {
    if (err instanceof cls) return err;
    throw err;
  }
  throw new Error(`expected a ${cls.name}`);
}

/** The ValidationError `fn` throws. */
export const refusal = (fn: () => unknown): ValidationError => thrown(fn, ValidationError);

/** The BotError `fn` throws (any refusal from the catalogue). */
export const botRefusal = (fn: () => unknown): BotError => thrown(fn, BotError);
