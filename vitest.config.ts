import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Fake servers bind 127.0.0.1:0; tests are independent and can run in parallel files.
    pool: 'forks',
  },
});
