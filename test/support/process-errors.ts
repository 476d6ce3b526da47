/**
 * What reaches the process-level handlers while a test runs: in production each uncaught
 * exception or unhandled rejection ends the process (Node's default), so a test that throws
 * malformed input at the bot expects this list to stay empty.
 */
export interface ProcessErrors {
  /** Everything caught so far, in order. */
  readonly caught: unknown[];
  /** Stops listening (afterAll). */
  stop(): void;
}

export function captureProcessErrors(): ProcessErrors {
  const caught: unknown[] = [];
  const record = (err: unknown) => void caught.push(err);
  process.on('uncaughtException', record);
  process.on('unhandledRejection', record);
  return {
    caught,
    stop() {
      process.off('uncaughtException', record);
      process.off('unhandledRejection', record);
    },
  };
}
