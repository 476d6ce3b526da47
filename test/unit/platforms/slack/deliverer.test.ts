import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { webApi } from '@slack/bolt';
import { describe, expect, test } from 'vitest';
import { startFakeSlack, type FakeSlack } from '../../../fakes/slack/fake-slack.ts';
import type { ProgressEvent } from '../../../../src/engine/job.ts';
import { RecentResults } from '../../../../src/engine/recent-results.ts';
import { createLogger } from '../../../../src/log.ts';
import { DEFAULT_TUNING, type SlackContext, type WebClient } from '../../../../src/platforms/slack/context.ts';
import { AckFirst } from '../../../../src/platforms/ack-first.ts';
import { SlackDeliverer } from '../../../../src/platforms/slack/deliverer.ts';
import { createSlackWebCalls, WEB_API_RETRY, type SlackWebCalls } from '../../../../src/platforms/slack/web-api.ts';
import { PlaceholderEdits } from '../../../../src/platforms/slack/placeholder-edits.ts';
import { ALL_MODELS, makeJob } from './fixtures.ts';

type Call = { method: string; args: Record<string, unknown> };

/** A deliverer whose WebClient talks to a fake Slack, and a scratch directory for result files. */
async function withSlackFake(run: (h: { t: ReturnType<typeof setup>; fake: FakeSlack; client: WebClient; dir: string }) => Promise<void>): Promise<void> {
  const fake = await startFakeSlack();
  const dir = await mkdtemp(join(tmpdir(), 'slack-deliver-'));
  try {
    const t = setup();
    const client = new webApi.WebClient(fake.botToken, { slackApiUrl: fake.apiUrl, retryConfig: { retries: 0 }, logLevel: webApi.LogLevel.ERROR });
    t.ctx.client = client;
    t.ctx.web = createSlackWebCalls({ apiUrl: fake.apiUrl, token: fake.botToken, log: t.ctx.log, retry: { ...WEB_API_RETRY, retries: 0 } });
    t.ctx.config = { SLACK_API_URL: fake.apiUrl } as SlackContext['config'];
    await run({ t, fake, client, dir });
  } finally {
    await fake.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function setup(tuning: Partial<SlackContext['tuning']> = {}) {
  let now = 1_700_000_000_000;
  const calls: Call[] = [];
  const tasks: Promise<unknown>[] = [];
  const rec = (method: string, answer: Record<string, unknown> = {}) => async (args: Record<string, unknown>) => {
    calls.push({ method, args });
    return { ok: true, ...answer };
  };
  // A job's messages go through `web`; the WebClient answers nothing here, so a message sent
  // through it instead fails the test.
  const web = {
    chat: { update: rec('chat.update'), postMessage: rec('chat.postMessage', { ts: '111.000001', channel: 'C1' }), postEphemeral: rec('chat.postEphemeral') },
  } as unknown as SlackWebCalls;
  const client = {} as WebClient;
  const locations: Record<string, unknown>[] = [];
  const ctx: SlackContext = {
    config: {} as SlackContext['config'],
    engine: { models: ALL_MODELS, updateLocation: async (_id: string, patch: Record<string, unknown>) => void locations.push(patch), linkJob: async () => undefined } as unknown as SlackContext['engine'],
    log: createLogger({ level: 'silent', pretty: false, destination: { write: () => undefined } }),
    client,
    web,
    botToken: 'xoxb-test',
    tuning: { ...DEFAULT_TUNING, now: () => now, ...tuning },
    track: (t) => void tasks.push(t),
    afterAck: () => undefined,
    ackFirst: new AckFirst(),
  };
  const deliverer = new SlackDeliverer(ctx);
  return {
    ctx,
    deliverer,
    calls,
    locations,
    advance: (ms: number) => (now += ms),
    settle: async () => {
      while (tasks.length) await tasks.shift();
    },
  };
}

const job = makeJob({ state: 'running', request: { location: { channel: 'C1', user: 'UALICE', ts: '100.000001' } } });
const ev = (over: Partial<ProgressEvent>): ProgressEvent => ({ jobId: job.id, state: 'running', phase: 'generating', elapsedMs: 0, done: 0, total: 2, changed: false, ...over });

describe('placeholder edits', () => {
  test('state changes edit at once; elapsed-time ticks at most every editIntervalMs', async () => {
    const t = setup({ editIntervalMs: 3000 });
    t.deliverer.progress(job, ev({ changed: true }));
    await t.settle();
    for (let i = 1; i <= 5; i++) {
      t.advance(1000);
      t.deliverer.progress(job, ev({ elapsedMs: i * 1000 }));
      await t.settle();
    }
    // One for the change, then one tick at 3 s (the 1 s, 2 s, 4 s, 5 s ticks are skipped).
    expect(t.calls.map((c) => [c.method, c.args.ts])).toEqual([
      ['chat.update', '100.000001'],
      ['chat.update', '100.000001'],
    ]);
    expect(String(t.calls[1]!.args.text)).toContain('0:03');
  });

  test('a tick that is not shown is dropped, not kept for later (a waiting job holds no copy of its record)', async () => {
    const t = setup({ editIntervalMs: 3000 });
    const edits = new PlaceholderEdits(t.ctx, async () => ({ channel: 'C1', ts: '100.000001' }));
    edits.progress(job, ev({ changed: true }));
    await t.settle();
    t.advance(1000);
    edits.progress(job, ev({ elapsedMs: 1000 })); // within the interval: not shown
    edits.kick(job.id); // e.g. the placeholder was just posted: shows what is pending, if anything
    await t.settle();
    expect(t.calls).toHaveLength(1);
    t.advance(2000);
    edits.progress(job, ev({ elapsedMs: 3000 })); // due: shown
    await t.settle();
    expect(t.calls).toHaveLength(2);
    expect(String(t.calls[1]!.args.text)).toContain('0:03');
  });

  test('tells the engine whether a tick would be shown now (interval, 429 pause, budget), so it can skip building one', async () => {
    const t = setup({ editIntervalMs: 3000, progressEditsPerMinute: 12 }); // capacity 2 tokens
    expect(t.deliverer.wantsTick(job.id)).toBe(true); // never edited, budget full
    t.deliverer.progress(job, ev({ changed: true }));
    await t.settle();
    expect(t.deliverer.wantsTick(job.id)).toBe(false); // edited just now
    t.advance(3000);
    expect(t.deliverer.wantsTick(job.id)).toBe(false); // 1 token left + 0.6 refilled: a tick leaves the last to a change
    t.advance(2000);
    expect(t.deliverer.wantsTick(job.id)).toBe(true);
    t.deliverer.progress(job, ev({ elapsedMs: 5000 }));
    await t.settle();
    expect(t.calls).toHaveLength(2); // the engine's tick, when asked for, is shown
  });

  test('the workspace edit budget caps edits; ticks leave the last token to a state change', async () => {
    const t = setup({ editIntervalMs: 0, progressEditsPerMinute: 12 }); // capacity 2 tokens
    const jobs = Array.from({ length: 4 }, (_, i) => makeJob({ id: `job${i}abcdefgh`, state: 'running', request: { location: { channel: 'C1', user: 'U', ts: `${i}.1` } } }));
    for (const j of jobs) t.deliverer.progress(j, ev({ jobId: j.id, elapsedMs: 500 }));
    await t.settle();
    expect(t.calls).toHaveLength(1); // ticks may not take the last token
    t.deliverer.progress(jobs[3]!, ev({ jobId: jobs[3]!.id, phase: 'downloading', changed: true }));
    await t.settle();
    expect(t.calls).toHaveLength(2);
    expect(String(t.calls[1]!.args.text)).toContain('Downloading');
    t.deliverer.progress(jobs[2]!, ev({ jobId: jobs[2]!.id, changed: true }));
    await t.settle();
    expect(t.calls).toHaveLength(2); // budget spent
    t.advance(10_000); // refills 2 tokens at 12/min
    t.deliverer.progress(jobs[2]!, ev({ jobId: jobs[2]!.id, elapsedMs: 10_500 }));
    await t.settle();
    expect(t.calls).toHaveLength(3);
  });

  test('delivery streams every image through the external upload flow into the placeholder thread, once', async () => {
    await withSlackFake(async ({ t, fake, client, dir }) => {
    const parent = await client.chat.postMessage({ channel: 'C1', text: 'parent' });
    const placeholder = await client.chat.postMessage({ channel: 'C1', thread_ts: parent.ts!, text: 'working…' });
    const bytes = [Buffer.from('\x89PNG\r\n\x1a\nfirst image', 'latin1'), Buffer.from('\x89PNG\r\n\x1a\nsecond', 'latin1')];
    const done = makeJob({ request: { location: { channel: 'C1', user: 'UALICE', ts: placeholder.ts!, threadTs: parent.ts! } } });
    for (const [i, task] of done.tasks.entries()) {
      task.image!.path = join(dir, `${i}.png`);
      task.image!.bytes = bytes[i]!.length;
      await writeFile(task.image!.path, bytes[i]!);
    }
    await t.deliverer.deliver(done);
    // Uploads run in parallel: they may reach Slack in any order, but each image exactly once.
    expect(fake.uploads.map((u) => u.bytes).sort(Buffer.compare)).toEqual([...bytes].sort(Buffer.compare));
    expect(fake.uploads.every((u) => u.bytes.length === u.declaredLength)).toBe(true);
    const completes = fake.callsTo('files.completeUploadExternal');
    expect(completes).toHaveLength(1);
    expect(completes[0]!.args).toMatchObject({ channel_id: 'C1', thread_ts: parent.ts });
    expect(fake.messagesIn('C1', parent.ts!).find((m) => m.files.length === 2)).toBeDefined();
    const fileIds = bytes.map((b) => fake.uploads.find((u) => u.bytes.equals(b))!.fileId);
    expect(t.locations).toContainEqual({ fileIds });
    expect(JSON.stringify(fake.message('C1', placeholder.ts!)!.blocks)).toContain(`imagine:delete:${done.id}`);
    // A retried delivery (fileIds saved) never uploads again.
    await t.deliverer.deliver({ ...done, request: { ...done.request, location: { ...done.request.location, fileIds } } });
    expect(fake.uploads).toHaveLength(2);
    expect(fake.callsTo('chat.update')).toHaveLength(2);
    });
  });
});

describe('results kept in memory after their download', () => {
  test('delivery sends the bytes a download just kept without reading its file; a result not kept is read from disk', async () => {
    await withSlackFake(async ({ t, fake, client, dir }) => {
    const placeholder = await client.chat.postMessage({ channel: 'C1', text: 'working…' });
    const kept = Buffer.from('\x89PNG\r\n\x1a\nkept in memory', 'latin1');
    const onDisk = Buffer.from('\x89PNG\r\n\x1a\nread from disk', 'latin1');
    const done = makeJob({ request: { location: { channel: 'C1', user: 'UALICE', ts: placeholder.ts! } } });
    // Image 1's file does not exist: only the kept bytes can deliver it.
    done.tasks[0]!.image!.path = join(dir, 'never-written.png');
    done.tasks[0]!.image!.bytes = kept.length;
    const recentResults = new RecentResults();
    t.ctx.recentResults = recentResults;
    recentResults.remember(done.tasks[0]!.image!.path, kept);
    done.tasks[1]!.image!.path = join(dir, '1.png');
    done.tasks[1]!.image!.bytes = onDisk.length;
    await writeFile(done.tasks[1]!.image!.path, onDisk);
    await t.deliverer.deliver(done);
    expect(fake.uploads.map((u) => u.bytes).sort(Buffer.compare)).toEqual([kept, onDisk].sort(Buffer.compare));
    expect(fake.uploads.every((u) => u.bytes.length === u.declaredLength)).toBe(true);
    expect(recentResults.take(done.tasks[0]!.image!.path)).toBeUndefined(); // handed over once
    });
  });
});

describe('a result Slack keeps refusing', () => {
  test("the placeholder and a private note give Slack's reason; an internal error's details stay out of the message", async () => {
    const t = setup();
    const done = makeJob({ state: 'succeeded', request: { location: { channel: 'C1', user: 'UALICE', ts: '100.000001' } } });
    await t.deliverer.undeliverable(done, new Error("ENOENT: no such file or directory, open '/srv/imagine/data/results/x.png'"));
    const update = t.calls.find((c) => c.method === 'chat.update')!;
    expect(update.args).toMatchObject({ channel: 'C1', ts: '100.000001' });
    const shown = JSON.stringify(update.args) + JSON.stringify(t.calls.find((c) => c.method === 'chat.postEphemeral')!.args);
    expect(shown).toContain('(an error while posting them)');
    expect(shown).not.toContain('ENOENT');
    expect(shown).not.toContain('/srv/imagine');

    const platformError = Object.assign(new Error('An API error occurred: not_in_channel'), { code: webApi.ErrorCode.PlatformError, data: { ok: false, error: 'not_in_channel' } });
    await t.deliverer.undeliverable(done, platformError);
    expect(JSON.stringify(t.calls.filter((c) => c.method === 'chat.update').at(-1)!.args)).toContain('(not_in_channel)');
  });
});

describe('what the deliverer keeps for a job', () => {
  test('nothing once the job is given up (the next start delivers it)', async () => {
    const t = setup();
    const done = makeJob({ state: 'succeeded', request: { location: { channel: 'C1', user: 'UALICE', ts: '100.000001' } } });
    t.deliverer.progress(done, ev({ jobId: done.id, changed: true }));
    expect(t.deliverer.jobsKept).toBe(1);
    await t.deliverer.undeliverable(done, new Error('refused'));
    await t.settle();
    expect(t.deliverer.jobsKept).toBe(0);
  });

  test("nothing, and no edit more, once the job's run here ended without delivering it (another process has it)", async () => {
    const t = setup();
    t.deliverer.progress(job, ev({ changed: true }));
    expect(t.deliverer.jobsKept).toBe(1);
    await t.settle();
    const edits = t.calls.filter((c) => c.method === 'chat.update').length;
    t.deliverer.forget(job.id);
    expect(t.deliverer.jobsKept).toBe(0);
    t.deliverer.progress(job, ev({ state: 'succeeded', phase: 'done', done: 2, changed: true }));
    t.deliverer.forget(job.id);
    await t.settle();
    expect(t.calls.filter((c) => c.method === 'chat.update').length).toBe(edits);
    expect(t.deliverer.jobsKept).toBe(0);
  });

  test("keeps a placeholder the store did not record past the run's end (a later run here must find it), and posts none late for a job let go of", async () => {
    const t = setup({ sleep: () => new Promise((resolve) => setTimeout(resolve, 20)) });
    t.ctx.engine.updateLocation = (async () => {
      throw new Error('store down');
    }) as never;
    const queued = makeJob({ state: 'queued', request: { location: { channel: 'C1', user: 'UALICE' } } });
    expect(await t.deliverer.postPlaceholder(queued, { channel: 'C1', user: 'UALICE' })).toMatchObject({ ts: '111.000001' });
    t.deliverer.forget(queued.id);
    expect(t.deliverer.jobsKept).toBe(1);

    // A placeholder post answered with a 429 after the run let go of its job: no late post.
    let refuse!: (err: unknown) => void;
    t.ctx.web.chat.postMessage = (() => new Promise((_resolve, reject) => (refuse = reject))) as never;
    const other = makeJob({ id: 'other', state: 'queued', request: { location: { channel: 'C1', user: 'UALICE' } } });
    const posting = t.deliverer.postPlaceholder(other, { channel: 'C1', user: 'UALICE' });
    await new Promise((resolve) => setTimeout(resolve, 10));
    t.deliverer.forget(other.id);
    // Longer than an interactive call waits out: the post gives up, and would try again later.
    refuse(Object.assign(new Error('rate limited'), { code: webApi.ErrorCode.RateLimitedError, retryAfter: 30 }));
    expect(await posting).toBeUndefined();
    await t.settle();
    expect(t.deliverer.jobsKept).toBe(1); // only the unrecorded placeholder above
  });

  test('a placeholder post turned away with a 429 while the result is delivered posts no late placeholder after it', async () => {
    // Retry-After is in whole seconds: the late post waits (a short while here) before it looks again.
    const t = setup({ sleep: () => new Promise((resolve) => setTimeout(resolve, 20)) });
    let refuse!: (err: unknown) => void;
    const posted: Record<string, unknown>[] = [];
    t.ctx.web.chat.postMessage = (async (args: Record<string, unknown>) => {
      posted.push(args);
      // The placeholder's post: Slack answers it only after the job failed, with a long Retry-After.
      if (posted.length === 1) return new Promise((_resolve, reject) => (refuse = reject));
      // The result's own post takes longer than that Retry-After (an upload can): the late post's
      // turn comes while the delivery is still under way.
      await new Promise((resolve) => setTimeout(resolve, 60));
      return { ok: true, ts: `200.00000${posted.length}`, channel: 'C1' };
    }) as never;
    const failed = makeJob({
      state: 'failed',
      error: { code: 'GENERATION_FAILED', userMessage: 'The model could not make this image.' },
      request: { location: { channel: 'C1', user: 'UALICE' } },
    });
    const placeholder = t.deliverer.postPlaceholder(failed, { channel: 'C1', user: 'UALICE' });
    const delivering = t.deliverer.deliver(failed);
    await new Promise((resolve) => setTimeout(resolve, 10));
    refuse(Object.assign(new Error('rate limited'), { code: webApi.ErrorCode.RateLimitedError, retryAfter: 30 }));
    expect(await placeholder).toBeUndefined();
    await delivering;
    await t.settle();
    // The placeholder's attempt, then the failure as a message of its own: nothing after it.
    expect(posted).toHaveLength(2);
    expect(JSON.stringify(posted[1])).toContain('could not make this image');
    expect(t.deliverer.jobsKept).toBe(0);
  });
});
