/**
 * `npm run bench -- webapi` (issue 13): CPU of the Slack Web API calls a job makes
 * (chat.postMessage, chat.update, files.getUploadURLExternal, files.completeUploadExternal), with
 * the bot's own messages for a one-image job (its placeholder, then its result with the buttons),
 * through the real WebClient on the global WHATWG `fetch` (its default) and on `webApiFetch`
 * (undici's `request`: the bot's WebClient, which made these calls until 2026-12-07), through
 * `createSlackWebCalls` (src/platforms/slack/web-api.ts: what the bot makes them with now), and
 * as the jobs bench's floor makes them (undici's `request` with a JSON body, no retries, only
 * `ok` checked: what any client adds), side by side in one run, with the bot's options. The fake
 * Slack runs in a child process, so its work is billed to none; CPU is this process's, every
 * thread (process.cpuUsage); rounds alternate so machine drift hits all alike.
 *
 *   node bench/webapi.ts [--jobs=N]
 */
import { fileURLToPath } from 'node:url';
import { webApi } from '@slack/bolt';
import { Agent, request } from 'undici';
import { webClientOptions } from '../src/platforms/slack/index.ts';
import { createSlackWebCalls, type SlackWebCalls } from '../src/platforms/slack/web-api.ts';
import { createLogger } from '../src/log.ts';
import { placeholderMessage, queuedEvent, resultMessage } from '../src/platforms/slack/blocks.ts';
import { MODEL_CATALOG } from '../src/engine/models.ts';
import { makeJob } from '../test/unit/platforms/slack/fixtures.ts';
import { alternateRounds, cpuMsOf, forkRole, median, numberFlag, roundsRow, stopChild } from './processes.ts';

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

/** A job's four Web API calls through `web`, with the bot's messages for a one-image job. */
async function jobCalls(web: SlackWebCalls, i: number): Promise<void> {
  const channel = `C${String(i % 400).padStart(4, '0')}`;
  const job = makeJob({ id: `job${String(i).padStart(10, '0')}`, request: { count: 1, prompt: `a lighthouse on a cliff at dusk ${i}` } });
  const posted = await web.chat.postMessage({ channel, ...placeholderMessage(job, queuedEvent(job)) });
  await web.chat.update({ channel, ts: String(posted.ts), ...resultMessage(job, MODEL_CATALOG) });
  const target = await web.files.getUploadURLExternal({ filename: `imagine-${i}.png`, length: 1024 });
  // The upload itself goes to upload_url outside the WebClient (every way alike); completing a
  // file never uploaded is an error the fake answers like Slack, which costs the same to read.
  await web.files.completeUploadExternal({ files: [{ id: String(target.file_id), title: 'a lighthouse' }], channel_id: channel }).catch(() => undefined);
}

export async function runWebApiBench(jobs = WEBAPI_BENCH_JOBS): Promise<string> {
  const fake = await forkRole<{ apiUrl: string; botToken: string }>(here, 'fake');
  try {
    const { apiUrl, botToken } = fake.ready;
    // The bot's own options (retries, timeout, rate limits), on the global fetch and on webApiFetch.
    const options = { ...webClientOptions({ SLACK_API_URL: apiUrl }), logLevel: webApi.LogLevel.ERROR };
    const dispatcher = new Agent();
    const headers = { authorization: `Bearer ${botToken}`, 'content-type': 'application/json; charset=utf-8' };
    const floorCall = (method: string) => async (args: object) => {
      const res = await request(`${apiUrl}${method}`, { method: 'POST', headers, body: JSON.stringify(args), dispatcher });
      const answer = (await res.body.json()) as Record<string, unknown>;
      if (!answer.ok) throw new Error(String(answer.error));
      return answer as never;
    };
    // A WebClient makes the same calls (SlackWebCalls is a part of its interface).
    const ways: Record<'globalFetch' | 'before' | 'now' | 'floor', SlackWebCalls> = {
      globalFetch: new webApi.WebClient(botToken, { ...options, fetch: globalThis.fetch }),
      before: new webApi.WebClient(botToken, options),
      now: createSlackWebCalls({ apiUrl: options.slackApiUrl, token: botToken, log: createLogger({ level: 'error', pretty: false, destination: { write: () => undefined } }) }),
      floor: {
        chat: { postMessage: floorCall('chat.postMessage'), postEphemeral: floorCall('chat.postEphemeral'), update: floorCall('chat.update') },
        files: { getUploadURLExternal: floorCall('files.getUploadURLExternal'), completeUploadExternal: floorCall('files.completeUploadExternal') },
      },
    };
    const rounds = (web: SlackWebCalls, count: number) => () => cpuMsOf(count, CONCURRENCY, (i) => jobCalls(web, i));
    for (const web of Object.values(ways)) await rounds(web, jobs / 10)(); // warm-up: JIT, connections
    const cost = await alternateRounds(
      { globalFetch: rounds(ways.globalFetch, jobs), before: rounds(ways.before, jobs), now: rounds(ways.now, jobs), floor: rounds(ways.floor, jobs) },
      ROUNDS,
    );
    await dispatcher.close();
    const row = (label: string, xs: number[]) => roundsRow(label, xs, jobs);
    return [
      `### Slack Web API calls of a job (${jobs} one-image jobs × 4 calls, ${CONCURRENCY} at once, fake Slack in another process)`,
      '',
      '| calls made by | CPU per job (median of rounds) | rounds |',
      '|---|---:|---|',
      row('the WebClient on the global fetch (its default)', cost.globalFetch),
      row("the WebClient on webApiFetch, undici's request (before)", cost.before),
      row('createSlackWebCalls, web-api.ts (now)', cost.now),
      row("undici's request, no client (the jobs bench's floor)", cost.floor),
      '',
      `Ratio now / before: **${(median(cost.now) / median(cost.before)).toFixed(2)}×**; now / no client: ${(median(cost.now) / median(cost.floor)).toFixed(2)}×; before / no client: ${(median(cost.before) / median(cost.floor)).toFixed(2)}× (what the WebClient adds: its queue, retries, argument encoding, debug-log copies).`,
    ].join('\n');
  } finally {
    await stopChild(fake.child);
  }
}

if (process.argv[1] === here) {
  if (process.argv.includes('--role=fake')) await fakeChild();
  else process.stdout.write(`${await runWebApiBench(numberFlag('jobs'))}\n`);
}
