import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCliArgs, referencesFrom, UsageError } from '../../../src/cli/imagine.ts';

describe('CLI flags', () => {
  it('parses every option; the prompt is the positionals joined', () => {
    expect(parseCliArgs(['a', 'red fox', '--model', 'nb2', '--ar', '16:9', '--res', '2k', '--n', '3', '--ref', 'a.png', '--ref', 'https://x.test/b.jpg', '--creativity', '0.5'])).toEqual({
      prompt: 'a red fox',
      model: 'nb2',
      ratio: '16:9',
      resolution: '2K',
      count: 3,
      creativity: 0.5,
      refs: ['a.png', 'https://x.test/b.jpg'],
      help: false,
    });
  });

  it.each([
    [['a fox', '--unknown']],
    [['a fox', '--model']],
    [['a fox', '--n', '2.5']],
    [['a fox', '--creativity', 'high']],
    [['--res', '1K']],
    [['a fox', '--n', '0']],
    [['a fox', '--n', '5']],
    [['a fox', '--res', '8K']],
    [['a fox', '--ar', '7:3']],
    [['a fox', '--creativity', '1.5']],
    [['a fox', '--creativity', '-0.1']],
    [['a fox', '--model', 'dalle']],
  ])('%j is a usage error', (argv) => {
    expect(() => parseCliArgs(argv)).toThrow(UsageError);
  });

  it('--help needs no prompt', () => {
    expect(parseCliArgs(['--help']).help).toBe(true);
  });

  it('turns --ref values into links or existing local files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cli-refs-'));
    try {
      await writeFile(join(dir, 'cat.png'), 'x');
      expect(await referencesFrom(['https://x.test/a.png', 'cat.png'], dir)).toEqual([
        { kind: 'url', url: 'https://x.test/a.png' },
        { kind: 'file', path: join(dir, 'cat.png'), name: 'cat.png' },
      ]);
      await expect(referencesFrom(['missing.png'], dir)).rejects.toThrow(/--ref 1: "missing.png" is neither a file nor an http\(s\) link/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
