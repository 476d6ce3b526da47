import { defineConfig } from 'vitest/config';

/**
 * `npm run test:faults`: the fault suite (README "Fault tolerance"). test/faults/*.test.ts also
 * run in `npm test` (fast enough); *.fault.ts only here. The Discord and Slack 429 scenarios are
 * the end-to-end tests that already cover them, run again here.
 */
export default defineConfig({
  test: {
    include: ['test/faults/**/*.{test,fault}.ts', 'test/e2e/discord-failures.test.ts', 'test/e2e/slack.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Processes and timing: one file at a time.
    fileParallelism: false,
  },
});
