/**
 * `npm run bench -- webapi` (issue 13): main-thread CPU of the Slack Web API calls a job makes
 * (chat.postMessage, chat.update, files.getUploadURLExternal, files.completeUploadExternal),
 * through the real WebClient on the global WHATWG `fetch` (its default, what the bot used before)
 * and on `webApiFetch` (undici's `request`, what the bot uses now), side by side in one run. The
 * fake Slack runs in a child process, so its work is billed to neither; CPU is this process's
 * (process.cpuUsage); rounds alternate between the two clients so machine drift hits both.
 *
 *   node bench/webapi.ts [--jobs=N]
 */
import { fileURLToPath } from 'node:url';
import { webApi } from '@slack/bolt';
import { webApiFetch } from '../src/platforms/slack/web-fetch.ts';
import { alternateRounds, cpuMsOf, forkRole, median, stopChild } from './processes.ts';

export const WEBAPI_BENCH_JOBS = 1_000;
/** Calls in flight at once (the bot has hundreds of jobs running). */
const CONCURRENCY = 50;
const ROUNDS = 6;
const here = fileURLToPath(import.meta.url);

async function fakeChild(): Promise<void> {
  const { startFakeSlack } = await import('../test/fakes/slack/fake-slack.ts');
  const slack = await startFakeSlack();
  // The call log would grow by 4 entries per job for the whole run.
  setInterval(() => (slack.calls.length = 0), 1_000).unref();
  process.on('message', (m: { close?: boolean }) => {
    if (m.close) void slack.close().then(() => process.exit(0));
  });
  process.send!({ ready: { apiUrl: slack.apiUrl, botToken: slack.botToken } });
}

/** A job's four Web API calls, with blocks of the usual size. */
async function jobCalls(client: webApi.WebClient, i: number): Promise<void> {
  const channel = `C${String(i % 400).padStart(4, '0')}`;
  const blocks = [
    { type: 'section', text: { type: 'mrkdwn', text: `*a lighthouse on a cliff at dusk ${i}* · Nano Banana Pro · 16:9 · 2K` } },
    { type: 'context', elements: [{ type: 'mrkdwn', text: 'Generating… 12 s · by <@UBENCH>' }] },
  ];
  const posted = await client.chat.postMessage({ channel, text: `Queued ${i}`, blocks });
  await client.chat.update({ channel, ts: String(posted.ts), text: `Done ${i}`, blocks });
  const target = await client.files.getUploadURLExternal({ filename: `imagine-${i}.png`, length: 1024 });
  // The upload itself goes to upload_url outside the WebClient (bot and baseline alike); completing
  // a file never uploaded is an error the fake answers like Slack, which costs the same to read.
  await client.files.completeUploadExternal({ files: [{ id: String(target.file_id), title: 'a lighthouse' }], channel_id: channel }).catch(() => undefined);
}

export async function runWebApiBench(jobs = WEBAPI_BENCH_JOBS): Promise<string> {
  const fake = await forkRole<{ apiUrl: string; botToken: string }>(here, 'fake');
  try {
    const { apiUrl, botToken } = fake.ready;
    const options = { slackApiUrl: apiUrl, rejectRateLimitedCalls: true, logLevel: webApi.LogLevel.ERROR };
    const clients = {
      before: new webApi.WebClient(botToken, options),
      now: new webApi.WebClient(botToken, { ...options, fetch: webApiFetch }),
    };
    await cpuMsOf(jobs / 10, CONCURRENCY, (i) => jobCalls(clients.before, i)); // warm-up: JIT, connections
    await cpuMsOf(jobs / 10, CONCURRENCY, (i) => jobCalls(clients.now, i));
    const cost = await alternateRounds({ before: () => cpuMsOf(jobs, CONCURRENCY, (i) => jobCalls(clients.before, i)), now: () => cpuMsOf(jobs, CONCURRENCY, (i) => jobCalls(clients.now, i)) }, ROUNDS);
    const perJob = (xs: number[]) => median(xs) / jobs;
    return [
      `### Slack Web API calls of a job (${jobs} jobs × 4 calls, ${CONCURRENCY} at once, real WebClient, fake Slack in another process)`,
      '',
      '| WebClient on | CPU per job (median of rounds) | rounds |',
      '|---|---:|---|',
      `| the global fetch (before) | ${perJob(cost.before).toFixed(3)} ms | ${cost.before.map((c) => (c / jobs).toFixed(3)).join(', ')} |`,
      `| webApiFetch, undici's request (now) | ${perJob(cost.now).toFixed(3)} ms | ${cost.now.map((c) => (c / jobs).toFixed(3)).join(', ')} |`,
      '',
      `Ratio now / before: **${(median(cost.now) / median(cost.before)).toFixed(2)}×**.`,
    ].join('\n');
  } finally {
    await stopChild(fake.child);
  }
}

if (process.argv[1] === here) {
  if (process.argv.includes('--role=fake')) await fakeChild();
  else {
    const jobs = process.argv.find((a) => a.startsWith('--jobs='))?.slice('--jobs='.length);
    process.stdout.write(`${await runWebApiBench(jobs ? Number(jobs) : undefined)}\n`);
  }
}
