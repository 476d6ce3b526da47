import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { IMAGINE_OPTIONS, IMAGINE_VALUE_OPTION_NAMES, parseFlagValue, parseImagineText, REF_FLAG } from '../../../commands/imagine/index.ts';
import type { OptionDefinition } from '../../../commands/options.ts';
import { parseCliArgs, referencesFrom, USAGE, UsageError } from '../../../src/cli/imagine.ts';

/** The sentence of the UsageError parseCliArgs throws (fails the test when it throws none). */
function usageError(argv: readonly string[]): string {
  try {
    parseCliArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) return err.message;
    throw err;
  }
  throw new Error(`expected ${JSON.stringify(argv)} to be refused`);
}

/** Every chat flag and alias, from the definitions, with the value of its option's example ('' for a switch). */
const CHAT_FLAGS = IMAGINE_VALUE_OPTION_NAMES.flatMap((name) => {
  const def: OptionDefinition = IMAGINE_OPTIONS[name];
  const value = def.example?.split(' ')[1] ?? '';
  const onCli = !def.platforms || def.platforms.includes('cli');
  return (def.flags ?? []).map((flag) => ({ name, flag, value, onCli }));
});

describe('CLI flags: the chat flags', () => {
  it('covers every option the chat has flags for', () => {
    expect(new Set(CHAT_FLAGS.map((f) => f.name))).toEqual(new Set(IMAGINE_VALUE_OPTION_NAMES));
    expect(CHAT_FLAGS.filter((f) => f.onCli).length).toBeGreaterThan(10);
  });

  const offered = CHAT_FLAGS.filter((f) => f.onCli);
  it.each(offered)('--$flag $value as separate words, inside the prompt, or with =', ({ name, flag, value }) => {
    for (const [argv, typed] of [
      [['a fox', `--${flag}`, value], value],
      [[`a fox --${flag} ${value}`], value],
      [['a fox', `--${flag}=${value}`], value],
      [['a', `—${flag.toUpperCase()}`, value.toUpperCase(), 'fox'], value.toUpperCase()],
    ] as const) {
      const expected = { [name]: parseFlagValue(name, typed) };
      expect(parseCliArgs(argv), JSON.stringify(argv)).toEqual({ help: false, prompt: 'a fox', options: expected, refs: [], notes: [] });
    }
  });

  it('reads values as chat does (16x9, 2k, a decimal comma, a model label with spaces)', () => {
    const argv = ['a fox', '--ar', '16x9', '--quality', '2k', '--temp', '0,7', '--model', 'Nano Banana Pro (RunBlob)'];
    const args = parseCliArgs(argv);
    expect(args.options).toEqual({ ratio: '16:9', resolution: '2K', creativity: 0.7, model: 'Nano Banana Pro (RunBlob)' });
    expect(args.options).toEqual(parseImagineText('a fox --ar 16x9 --quality 2k --temp 0,7 --model "Nano Banana Pro (RunBlob)"').options);
    expect(parseCliArgs(['a fox', '--model=Nano Banana Pro (RunBlob)']).options).toEqual({ model: 'Nano Banana Pro (RunBlob)' });
  });

  it('mixes flags in the prompt and separate words; the prompt is the words left, joined', () => {
    expect(parseCliArgs(['a red', '--n', '2', 'fox --ar 3:2', 'at dusk', '--res=4K'])).toEqual({
      help: false,
      prompt: 'a red fox at dusk',
      options: { count: 2, ratio: '3:2', resolution: '4K' },
      refs: [],
      notes: [],
    });
  });

  it('takes -m / -n (one dash, a whole word) as --m / --n, and drops a lone --', () => {
    expect(parseCliArgs(['--', 'a fox', '-m', 'pro', '-n', '2']).options).toEqual({ model: 'pro', count: 2 });
    expect(parseCliArgs(['--', 'a fox', '-m', 'pro']).prompt).toBe('a fox');
  });

  it('an unknown model is left to the configured models (buildImagineRequest, after the configuration is read)', () => {
    expect(parseCliArgs(['a fox', '--model', 'dalle']).options).toEqual({ model: 'dalle' });
  });

  const discordOnly = CHAT_FLAGS.filter((f) => !f.onCli);
  it.each(discordOnly)('--$flag (not on the command line) is ignored with a note', ({ flag }) => {
    expect(discordOnly.length).toBeGreaterThan(0);
    expect(parseCliArgs(['a fox', `--${flag}`])).toEqual({
      help: false,
      prompt: 'a fox',
      options: {},
      refs: [],
      notes: ['--private is ignored: it only applies on Discord ("Only you see the result (and its buttons)").'],
    });
  });

  it('--ref takes links and local paths, as separate words or in the prompt, repeatable, in order', () => {
    expect(parseCliArgs(['a cat --ref cat.png', '--ref', 'https://x.test/b.jpg', '--ref=./c d.png']).refs).toEqual([
      'cat.png',
      'https://x.test/b.jpg',
      './c d.png',
    ]);
  });

  it('-h / --help needs no prompt and wins over bad flags', () => {
    expect(parseCliArgs(['--help']).help).toBe(true);
    expect(parseCliArgs(['a fox', '--bogus', '-h']).help).toBe(true);
  });
});

describe('CLI flags: usage errors, with the chat sentences', () => {
  const ratios = 'auto, 1:1, 2:3, 3:2, 3:4, 4:3, 4:5, 5:4, 9:16, 16:9, 21:9, 1:4, 1:8, 4:1, 8:1';
  it.each<[string[], string]>([
    [['a fox', '--unknown'], '--unknown is not a flag this bot knows. Flags: --model, --ar, --res, --n, --cr, --private, --ref.'],
    [['a fox', '-x'], '--x is not a flag this bot knows. Flags: --model, --ar, --res, --n, --cr, --private, --ref.'],
    [['a fox', '--model'], '--model needs a model name, e.g. --model pro.'],
    [['a fox', '--model', ''], '--model needs a model name, e.g. --model pro.'],
    [['a fox', '--ar', '--res', '2K'], `--ar needs a ratio. Use one of: ${ratios}.`],
    [['a fox', '--ar', '7:3'], `--ar 7:3 is not a ratio this bot knows. Use one of: ${ratios}.`],
    [['a fox --aspect 7:3'], `--aspect 7:3 is not a ratio this bot knows. Use one of: ${ratios}.`],
    [['a fox', '--res', '8K'], '--res 8K is not a resolution this bot knows. Use one of: 1K, 2K, 4K.'],
    [['a fox', '--n', '2.5'], '--n 2.5 is not a number of images this bot can make. Use a whole number from 1 to 4, e.g. --n 2.'],
    [['a fox', '--n', '0'], '--n 0 is not a number of images this bot can make. Use a whole number from 1 to 4, e.g. --n 2.'],
    [['a fox', '--count=5'], '--count 5 is not a number of images this bot can make. Use a whole number from 1 to 4, e.g. --count 2.'],
    [['a fox', '--creativity', 'high'], '--creativity high is not a valid creativity. Use a number from 0 to 1, e.g. --creativity 0.7.'],
    [['a fox', '--creativity', '1.5'], '--creativity 1.5 is not a valid creativity. Use a number from 0 to 1, e.g. --creativity 0.7.'],
    [['a fox', '--cr', '-0.1'], '--cr -0.1 is not a valid creativity. Use a number from 0 to 1, e.g. --cr 0.7.'],
    [['a fox --ar 16:9', '--ar', '1:1'], '--ar is given twice. Keep one.'],
    [['a fox', '--ref'], `--ref needs a link to an image, e.g. ${REF_FLAG.example}.`],
    [['--res', '1K'], 'The prompt is empty: describe the image you want, e.g. "a red fox in the snow --ar 16:9".'],
    [[], 'The prompt is empty: describe the image you want, e.g. "a red fox in the snow --ar 16:9".'],
  ])('%j → the sentence', (argv, sentence) => {
    expect(usageError(argv)).toBe(sentence);
  });

  it('a prompt over the limit → the sentence', () => {
    expect(usageError(['x'.repeat(4001), '--n', '2'])).toBe('The prompt is 4001 characters long; the limit is 4000. Shorten it.');
  });

  it.each([['a fox --res 3K'], ['a fox --n two'], ['a fox --ratio'], ['--bogus a fox']])('%s: the same sentence as in chat', (text) => {
    let chat = '';
    try {
      parseImagineText(text);
    } catch (err) {
      chat = err instanceof Error ? (err as { userMessage?: string }).userMessage ?? err.message : String(err);
    }
    expect(chat).not.toBe('');
    expect(usageError([text])).toBe(chat);
    expect(usageError(text.split(' '))).toBe(chat);
  });
});

describe('CLI usage text', () => {
  it('lists every flag and alias the command line takes, and none it ignores', () => {
    const listed = (flag: string) => new RegExp(`(^|[\\s/])${flag}([\\s:/<]|$)`, 'mu').test(USAGE);
    for (const { flag, onCli } of CHAT_FLAGS) expect(listed(`--${flag}`), flag).toBe(onCli);
    for (const flag of [...REF_FLAG.flags.map((f) => `--${f}`), '-h', '--help']) expect(listed(flag), flag).toBe(true);
  });

  it('gives the ranges, the defaults and each model of the catalog', () => {
    expect(USAGE).toContain('How many images to make (1-4). Example: --n 2');
    expect(USAGE).toContain('0 to 1 (RunBlob models only). Example: --cr 0.7');
    expect(USAGE).toContain('1:1 (auto with reference images), 1K, 1 image.');
    expect(USAGE).toContain('Nano Banana Pro (RunBlob): --model runblob-pro');
    expect(USAGE).toContain('21:9 (ultrawide)');
  });
});

describe('CLI --ref values', () => {
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
