/**
 * Governance across processes on Slack (issue 10, point 4): two complete bots (each its own
 * Bolt App, engine and HTTP server, as two processes would be) share one Redis and one fake
 * Slack workspace. An admin's change through one applies at once to a command through the
 * other, and so does a user's /settings. The Redis is a private redis-server on a free port
 * (nothing else's keys, nothing left behind).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { createSlackDriver, type SlackDriver, type SlackUser } from '../fakes/slack/driver.ts';
import { startFakeSlack, type FakeEphemeral, type FakeSlack } from '../fakes/slack/fake-slack.ts';
import { startFakeRunbase, type FakeRunbase } from '../fakes/runbase.ts';
import { startFakeRunblob, type FakeRunblob } from '../fakes/runblob.ts';
import { acked, SIGNING_SECRET, startRealBot, testLogger, type RunningBot } from './slack-harness.ts';

const WAIT_MS = 60_000;
vi.setConfig({ testTimeout: 180_000, hookTimeout: 120_000 });

const ada = { id: 'U0ADA', name: 'ada' }; // workspace admin
const bob = { id: 'U0BOB', name: 'bob' };

let dir: string;
let redis: ChildProcess | undefined;
let fake: FakeSlack;
let runbase: FakeRunbase;
let runblob: FakeRunblob;
const bots: RunningBot[] = [];
let one: SlackDriver;
let two: SlackDriver;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function redisAnswers(port: number): Promise<boolean> {
  const ping = spawn('redis-cli', ['-p', String(port), 'ping'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  ping.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise((r) => ping.on('close', r));
  return out.trim() === 'PONG';
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'imagine-two-slack-'));
  const port = await freePort();
  redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  for (let i = 0; !(await redisAnswers(port)); i++) {
    if (i > 200) throw new Error('redis-server did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  fake = await startFakeSlack({
    users: [
      { id: ada.id, name: ada.name, is_admin: true },
      { id: bob.id, name: bob.name },
    ],
    channels: [
      { id: 'C0ART', name: 'art' },
      { id: 'C0GEN', name: 'general' },
    ],
  });
  runbase = await startFakeRunbase({ durationMs: 150, rateLimit: false });
  runblob = await startFakeRunblob({ durationMs: 150 });
  const env = (name: string): Record<string, string> => ({
    SLACK_BOT_TOKEN: fake.botToken,
    SLACK_SIGNING_SECRET: SIGNING_SECRET,
    SLACK_API_URL: fake.apiUrl,
    RUNBASE_API_KEY: runbase.apiKey,
    RUNBASE_API_URL: runbase.url,
    RUNBLOB_API_KEY: runblob.apiKey,
    RUNBLOB_API_URL: runblob.url,
    STORE_URL: `redis://127.0.0.1:${port}`,
    DATA_DIR: join(dir, name),
    FETCH_ALLOW_HOSTS: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'silent',
  });
  const log = testLogger();
  for (const name of ['one', 'two']) bots.push(await startRealBot(env(name), log));
  const driverFor = (b: RunningBot) => createSlackDriver({ eventsUrl: `${b.http.localUrl}/slack/events`, signingSecret: SIGNING_SECRET, fake });
  [one, two] = [driverFor(bots[0]!), driverFor(bots[1]!)];
});

afterAll(async () => {
  for (const b of bots) await b.stop().catch(() => undefined);
  await Promise.all([fake?.close(), runbase?.close(), runblob?.close()]);
  const proc = redis;
  if (proc && proc.exitCode === null) {
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
  }
  await rm(dir, { recursive: true, force: true });
});


/** A slash command through `driver` (one bot), waiting for the private answer holding `includes`. */
async function slash(driver: SlackDriver, user: SlackUser, channel: string, command: string, text: string, includes: string): Promise<FakeEphemeral> {
  const before = fake.ephemerals.length;
  acked(await driver.slashCommand({ user, channel, command, text }));
  return fake.waitFor(
    () => fake.ephemerals.slice(before).find((e) => e.user === user.id && e.channel === channel && e.text.includes(includes)),
    WAIT_MS,
    `${command} ${text}: "${includes}" (got ${JSON.stringify(fake.ephemerals.slice(before).map((e) => e.text))})`,
  );
}
const providerRequests = () => runbase.requests.length + runblob.requests.length;

/** /imagine through `driver`; resolves with the job behind the result message. */
async function imagine(driver: SlackDriver, user: SlackUser, channel: string, prompt: string) {
  const before = fake.messagesIn(channel).length;
  acked(await driver.slashCommand({ user, channel, text: prompt }));
  const m = await fake.waitFor(
    () => fake.messagesIn(channel).slice(before).find((x) => x.byBot && JSON.stringify(x.blocks ?? []).includes('imagine:delete:')),
    WAIT_MS,
    `a result in ${channel}`,
  );
  const id = /imagine:delete:([^"]+)/.exec(JSON.stringify(m.blocks))![1]!;
  return (await bots[0]!.engine.getJob(id))!;
}

describe('two bots on one Redis', () => {
  test('a filter word added through one refuses the prompt through the other at once, before any provider', async () => {
    await slash(one, ada, 'C0ART', '/imagine-admin', 'filter add kraken', 'Done: added "kraken"');
    const sent = providerRequests();
    await slash(two, bob, 'C0ART', '/imagine', 'a KRÀKEN rising', "A rule set by this server's admins refused this prompt");
    expect(providerRequests()).toBe(sent);
  });

  test('a channel deny-list set through the second applies to the first; a block through the first to the second', async () => {
    await slash(two, ada, 'C0ART', '/imagine-admin', 'channels deny <#C0GEN|general>', 'everywhere except <#C0GEN>');
    const sent = providerRequests();
    await slash(one, bob, 'C0GEN', '/imagine', 'a lighthouse', "don't allow /imagine in this channel");
    expect(providerRequests()).toBe(sent);
    await imagine(one, bob, 'C0ART', 'a lighthouse');

    await slash(one, ada, 'C0ART', '/imagine-admin', `block <@${bob.id}|bob>`, 'is blocked');
    await slash(two, bob, 'C0ART', '/imagine', 'a lighthouse', 'have blocked you');
    await slash(two, ada, 'C0ART', '/imagine-admin', `unblock <@${bob.id}>`, 'may make images here again');
    await imagine(one, bob, 'C0ART', 'a lighthouse');
  });

  test("a user's /settings saved through one are used by /imagine through the other", async () => {
    await slash(one, bob, 'C0ART', '/settings', '--model runblob-2 --ar 4:3', 'Saved: your defaults');
    const job = await imagine(two, bob, 'C0ART', 'a red fox');
    expect([job.request.model, job.request.ratio]).toEqual(['runblob-2', '4:3']);
  });
});
