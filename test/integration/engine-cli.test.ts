/**
 * The CLI as an operator runs it: a child process with the environment pointing at a fake
 * provider, in a temp working directory; images land in ./out, bad flags print the usage.
 */
import { spawn } from 'node:child_process';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sniffFile } from '../../src/engine/image-sniff.ts';
import { outputSize, renderPng } from '../fakes/png.ts';
import { startFakeRunblob } from '../fakes/runblob.ts';
import { startFakeRunbase } from '../fakes/runbase.ts';
import { captureLogger, FAST_TIMING, tempDir } from './engine-harness.ts';
import { startBot } from '../../src/app.ts';
import { parseConfig } from '../../src/config.ts';
import { USAGE } from '../../src/cli/imagine.ts';

const NODE = resolve('node_modules/.bin/node');
const CLI = resolve('src/cli/imagine.ts');


function runCli(args: string[], cwd: string, env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(NODE, [CLI, ...args], { cwd, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? cwd, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolvePromise({ code, stdout, stderr }));
  });
}

// Each test spawns a Node process: run them side by side (cleanups through the test's own context).
describe.concurrent('CLI: npm run imagine', () => {
  it('makes two images against the configured provider and saves them to ./out', async ({ onTestFinished: after }) => {
    const fake = await startFakeRunbase({ durationMs: 50 });
    after(() => fake.close());
    const cwd = await tempDir('cli-');
    after(() => rm(cwd, { recursive: true, force: true }));
    const { code, stdout, stderr } = await runCli(['a lighthouse at dusk', '--model', 'nb2', '--ar', '16:9', '--res', '1k', '--n', '2'], cwd, {
      RUNBASE_API_KEY: fake.apiKey,
      RUNBASE_API_URL: fake.url,
      STORE_URL: `sqlite://${join(cwd, 'store.sqlite')}`,
      DATA_DIR: join(cwd, 'data'),
    });
    expect(stderr).not.toContain(fake.apiKey);
    expect(code, stderr).toBe(0);
    const files = (await readdir(join(cwd, 'out'))).sort();
    expect(files).toHaveLength(2);
    expect(files[0]).toMatch(/^[0-9A-Za-z]{12}-1\.png$/);
    expect(files[1]).toMatch(/^[0-9A-Za-z]{12}-2\.png$/);
    expect(stdout.trim().split('\n').sort()).toEqual(files.map((f) => join('out', f)));
    const size = outputSize('16:9', '1K');
    expect(await sniffFile(join(cwd, 'out', files[0]!))).toMatchObject({ mime: 'image/png', ...size });
    // The progress line went to stderr, one line per change (not a TTY).
    expect(stderr).toMatch(/generating · 0\/2 images/);
    expect(stderr).toMatch(/done · 2\/2 images/);
    // Sent as asked.
    const create = fake.requests.find((r) => r.kind === 'create')!;
    expect(create.body).toMatchObject({ model: 'google/nano-banana-2', input: { aspect_ratio: '16:9', resolution: '1K' } });
  }, 30_000);

  it('works with only RunBlob configured: a local reference goes inline, creativity as temperature; chat flags in the prompt', async ({ onTestFinished: after }) => {
    const fake = await startFakeRunblob({ durationMs: 50 });
    after(() => fake.close());
    const cwd = await tempDir('cli-');
    after(() => rm(cwd, { recursive: true, force: true }));
    await writeFile(join(cwd, 'ref.png'), await renderPng({ width: 64, height: 64, seed: 1 }));
    // Written as in chat: flags inside the prompt, an alias, a decimal comma; --private is Discord's (ignored, with a note).
    const { code, stdout, stderr } = await runCli(['a cat --temp 0,2 --private', '--ref', 'ref.png'], cwd, {
      RUNBLOB_API_KEY: fake.apiKey,
      RUNBLOB_API_URL: fake.url,
      STORE_URL: `sqlite://${join(cwd, 'store.sqlite')}`,
      DATA_DIR: join(cwd, 'data'),
    });
    expect(code, stderr).toBe(0);
    expect(stderr).toContain('--private is ignored: it only applies on Discord');
    const files = await readdir(join(cwd, 'out'));
    expect(files).toHaveLength(1);
    expect(stdout.trim()).toBe(join('out', files[0]!));
    const create = fake.requests.find((r) => r.kind === 'create')!;
    expect(create.body).toMatchObject({ model: 'standard', quality: 'standard', aspect_ratio: 'auto', temperature: 0.2 });
    expect((create.body as { images: string[] }).images[0]).toMatch(/^data:image\/png;base64,/);
  }, 30_000);

  it('a failed job prints the user sentence and exits 1', async ({ onTestFinished: after }) => {
    const fake = await startFakeRunbase({ durationMs: 50 });
    after(() => fake.close());
    fake.injectFault({ match: 'create', status: 402 });
    const cwd = await tempDir('cli-');
    after(() => rm(cwd, { recursive: true, force: true }));
    const { code, stderr } = await runCli(['a fox'], cwd, {
      RUNBASE_API_KEY: fake.apiKey,
      RUNBASE_API_URL: fake.url,
      STORE_URL: `sqlite://${join(cwd, 'store.sqlite')}`,
      DATA_DIR: join(cwd, 'data'),
    });
    expect(code).toBe(1);
    expect(stderr).toContain('out of credits');
  }, 30_000);

  // The chat's sentences (commands/imagine/flags.ts), each with the usage.
  it.for<[string[], string]>([
    [['a fox', '--bogus'], '--bogus is not a flag this bot knows. Flags: --model, --ar, --res, --n, --cr, --private, --ref.'],
    [['a fox', '--n'], '--n needs a number of images from 1 to 4, e.g. --n 2.'],
    [['a fox', '--n', 'two'], '--n two is not a number of images this bot can make. Use a whole number from 1 to 4, e.g. --n 2.'],
    [['--ar', '16:9'], 'The prompt is empty: describe the image you want, e.g. "a red fox in the snow --ar 16:9".'],
    [['a fox --count 9'], '--count 9 is not a number of images this bot can make. Use a whole number from 1 to 4, e.g. --count 2.'],
    [['a fox', '--res', '3K'], '--res 3K is not a resolution this bot knows. Use one of: 1K, 2K, 4K.'],
    [['a fox', '—ar', '7:3'], '--ar 7:3 is not a ratio this bot knows. Use one of: auto, 1:1, 2:3, 3:2, 3:4, 4:3, 4:5, 5:4, 9:16, 16:9, 21:9, 1:4, 1:8, 4:1, 8:1.'],
    [['a fox', '--creativity', '2'], '--creativity 2 is not a valid creativity. Use a number from 0 to 1, e.g. --creativity 0.7.'],
    [['a fox', '--ref', 'missing.png'], '--ref 1: "missing.png" is neither a file nor an http(s) link.'],
  ])('bad flags %j → usage on stderr, exit 2', async ([args, message], { onTestFinished: after }) => {
    const cwd = await tempDir('cli-');
    after(() => rm(cwd, { recursive: true, force: true }));
    // A valid configuration: the flags alone must be refused, before anything is sent.
    const { code, stdout, stderr } = await runCli(args, cwd, { RUNBASE_API_KEY: 'sk-never-used', RUNBASE_API_URL: 'http://127.0.0.1:9', STORE_URL: `sqlite://${join(cwd, 'store.sqlite')}` });
    expect(code).toBe(2);
    expect(stderr).toBe(`${message}\n\n${USAGE}\n`);
    expect(stdout).toBe('');
  });

  it('an option the model cannot honour → the sentence naming the allowed values, exit 2', async ({ onTestFinished: after }) => {
    const fake = await startFakeRunbase({ durationMs: 50 });
    after(() => fake.close());
    const cwd = await tempDir('cli-');
    after(() => rm(cwd, { recursive: true, force: true }));
    const { code, stderr } = await runCli(['a fox', '--model', 'runbase-pro', '--ar', '8:1'], cwd, {
      RUNBASE_API_KEY: fake.apiKey,
      RUNBASE_API_URL: fake.url,
      STORE_URL: `sqlite://${join(cwd, 'store.sqlite')}`,
      DATA_DIR: join(cwd, 'data'),
    });
    expect(code).toBe(2);
    expect(stderr).toContain('Nano Banana Pro (Runbase) does not support the aspect ratio 8:1');
    expect(stderr).toContain('Nano Banana 2 (Runbase)');
    expect(fake.counts.create).toBe(0);
  });

  it('an unknown model → the sentence listing the configured models, exit 2', async ({ onTestFinished: after }) => {
    const fake = await startFakeRunbase({ durationMs: 50 });
    after(() => fake.close());
    const cwd = await tempDir('cli-');
    after(() => rm(cwd, { recursive: true, force: true }));
    const { code, stdout, stderr } = await runCli(['a fox', '-m', 'dalle'], cwd, {
      RUNBASE_API_KEY: fake.apiKey,
      RUNBASE_API_URL: fake.url,
      STORE_URL: `sqlite://${join(cwd, 'store.sqlite')}`,
      DATA_DIR: join(cwd, 'data'),
    });
    expect(code).toBe(2);
    expect(stderr).toBe(
      '"dalle" is not a model this bot offers. Choose one of: Nano Banana Pro (Runbase) (--model runbase-pro), Nano Banana 2 (Runbase) (--model runbase-2).\n',
    );
    expect(stdout).toBe('');
    expect(fake.counts.create).toBe(0);
  });

  it('a bad configuration lists the problem and exits 1', async ({ onTestFinished: after }) => {
    const cwd = await tempDir('cli-');
    after(() => rm(cwd, { recursive: true, force: true }));
    const { code, stderr } = await runCli(['a fox'], cwd, { RUNBASE_API_KEY: 'nope', QUOTA_DAILY_UNITS: 'lots' });
    expect(code).toBe(1);
    expect(stderr).toContain('QUOTA_DAILY_UNITS');
    expect(stderr).toContain('RUNBASE_API_KEY');
  });

  it('interrupted with Ctrl-C mid-job: the job stays in the store, and a bot on the same store finishes it, charged once, and logs the images', async ({
    onTestFinished: after,
  }) => {
    const fake = await startFakeRunbase({ durationMs: 1_500 });
    after(() => fake.close());
    const cwd = await tempDir('cli-');
    after(() => rm(cwd, { recursive: true, force: true }));
    const env = { RUNBASE_API_KEY: fake.apiKey, RUNBASE_API_URL: fake.url, STORE_URL: `sqlite://${join(cwd, 'store.sqlite')}`, DATA_DIR: join(cwd, 'data') };
    const child = spawn(NODE, [CLI, 'a harbour at night', '--model', 'runbase-2'], { cwd, env: { PATH: process.env.PATH ?? '', HOME: cwd, ...env } });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    // The task is created (and its id recorded) before the operator gives up.
    for (let i = 0; i < 300 && fake.counts.create === 0; i++) await sleep(20);
    expect(fake.counts.create).toBe(1);
    await sleep(300);
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(stderr).toContain('Interrupted: the job stays in the store');

    const { log, lines } = captureLogger();
    const bot = await startBot(parseConfig({ ...env, PORT: '0' }), { log, engineTiming: FAST_TIMING });
    after(() => bot.stop());
    let finished: { jobId: string; images: string[] } | undefined;
    for (let i = 0; i < 500 && !finished; i++) {
      finished = lines.map((l) => JSON.parse(l) as { msg: string; jobId: string; images: string[] }).find((l) => l.msg.startsWith('an interrupted command-line job finished here'));
      if (!finished) await sleep(20);
    }
    expect(finished, lines.join('')).toBeDefined();
    expect(finished!.images).toHaveLength(1);
    expect(await sniffFile(finished!.images[0]!)).toMatchObject({ mime: 'image/png' });
    // Not created again, delivered (out of the unfinished set), charged once.
    expect(fake.counts.create).toBe(1);
    const job = (await bot.engine.getJob(finished!.jobId))!;
    expect(job.state).toBe('succeeded');
    for (let i = 0; i < 100 && (await bot.engine.getJob(job.id))?.deliveredAt === undefined; i++) await sleep(20);
    expect((await bot.engine.getJob(job.id))?.deliveredAt).toBeDefined();
    expect((await bot.engine.quota(job.request.requester)).used).toBe(1);
  }, 30_000);
});

