// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'data/', 'out/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'Only src/config.ts reads process.env.' }],
    },
  },
  {
    // Imports point one way (docs/architecture.md): platforms and commands use the engine, the
    // engine uses providers, providers use neither.
    files: ['src/providers/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['**/engine/**', '**/engine'], message: 'Providers do not import the engine: define what they need in src/providers/.' },
            { group: ['**/platforms/**', '**/platforms'], message: 'Providers do not import platforms.' },
            { group: ['**/commands/**', '**/commands'], message: 'Providers do not import commands.' },
          ],
        },
      ],
    },
  },
  {
    files: ['src/engine/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['**/platforms/**', '**/platforms'], message: 'The engine does not import platforms: the composition root (src/app.ts) wires them.' },
            { group: ['**/commands/**', '**/commands'], message: 'The engine does not import commands.' },
          ],
        },
      ],
    },
  },
  {
    // config.ts is the one place that reads the environment; tests, fakes and benches set it up.
    files: ['src/config.ts', 'test/**', 'bench/**', 'vitest.config.ts'],
    rules: { 'no-restricted-properties': 'off' },
  },
);
