/**
 * /imagine on Slack end to end: the real Bolt App inside the real bot, driven by correctly
 * signed requests, against a fake Slack Web API and fake Runbase/RunBlob on 127.0.0.1.
 * Every acknowledgement is asserted under Slack's 3 s deadline.
 */
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, test, vi, type MockInstance } from 'vitest';
import { RecentResults } from '../../src/engine/recent-results.ts';
import { ResultsWorker } from '../../src/engine/results-worker.ts';
import type { FakeMessage } from '../fakes/slack/fake-slack.ts';
import type { AckResult } from '../fakes/slack/driver.ts';
import { acked as ackedInTime, ACK_DEADLINE_MS, startSlackHarness, type SlackHarness } from './slack-harness.ts';

/** Generous: at production timing (a composition root without the test time knobs) a job takes ~10 s. */
const RESULT_TIMEOUT_MS = 60_000;
vi.setConfig({ testTimeout: 180_000, hookTimeout: 120_000 });
const alice = { id: 'UALICE', name: 'alice' };
const bob = { id: 'UBOB', name: 'bob' };

let h: SlackHarness;
const acks: AckResult[] = [];
/** Installed before the bot starts, so a WebClient left on the global fetch would be seen here. */
let globalFetch: MockInstance<typeof fetch>;
/** Every result body kept in memory on the event loop's side, in every RecentResults the bot builds. */
let kept: MockInstance<RecentResults['remember']>;
/** Every result download the bot asks of its results thread. */
let downloads: MockInstance<ResultsWorker['download']>;
/** Every file upload the bot asks of its results thread. */
let uploads: MockInstance<ResultsWorker['upload']>;

beforeAll(async () => {
  globalFetch = vi.spyOn(globalThis, 'fetch');
  kept = vi.spyOn(RecentResults.prototype, 'remember');
  downloads = vi.spyOn(ResultsWorker.prototype, 'download');
  uploads = vi.spyOn(ResultsWorker.prototype, 'upload');
  h = await startSlackHarness({ fakeSlack: { notInChannel: ['CNOTJOINED', 'GPRIVATE', 'CPRIVATE'], privateChannels: ['CPRIVATE'] } });
});
afterAll(async () => {
  await h?.close();
  globalFetch.mockRestore();
  kept.mockRestore();
  downloads.mockRestore();
  uploads.mockRestore();
});

function acked<T extends AckResult>(r: T): T {
  acks.push(r);
  return ackedInTime(r);
}

type Json = Record<string, unknown>;
const blocksText = (m: FakeMessage) => JSON.stringify(m.blocks ?? []);
const isResult = (m: FakeMessage) => blocksText(m).includes('imagine:delete:');
const actionIds = (m: FakeMessage): string[] =>
  (m.blocks as Json[]).flatMap((b) => (b.type === 'actions' ? (b.elements as Json[]).map((e) => String(e.action_id)) : []));
const findAction = (m: FakeMessage, prefix: string) => {
  const id = actionIds(m).find((a) => a.startsWith(prefix));
  if (!id) throw new Error(`no action ${prefix} in ${actionIds(m).join(', ')}`);
  return id;
};
const jobIdOf = (m: FakeMessage) => findAction(m, 'imagine:delete:').split(':')[2]!;

/** The bot's result messages in a channel (optionally one thread), waiting until `count` exist. */
async function results(channel: string, count = 1, threadTs?: string): Promise<FakeMessage[]> {
  return h.fake.waitFor(
    () => {
      const found = h.fake.messagesIn(channel, threadTs).filter(isResult);
      return found.length >= count ? found : undefined;
    },
    RESULT_TIMEOUT_MS,
    `${count} result(s) in ${channel}`,
  );
}

async function ephemeralFor(user: string, channel: string, includes: string) {
  return h.fake.waitFor(() => h.fake.ephemerals.find((e) => e.user === user && e.channel === channel && e.text.includes(includes)), RESULT_TIMEOUT_MS, `ephemeral "${includes}"`);
}

async function png(width: number, height: number, color = '#3366cc'): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: color } }).png().toBuffer();
}

describe('/imagine with flags', () => {
  test('acks at once, posts a live placeholder, uploads every image into the channel, then shows summary and buttons', async () => {
    const r = acked(await h.driver.slashCommand({ user: alice, channel: 'CFLAGS', text: 'a lighthouse at dusk --ar 16:9 --res 2K --n 2 --model pro' }));
    expect(r.body).toBe('');

    const [result] = await results('CFLAGS');
    // The placeholder was posted once, then edited in place into the result.
    const posts = h.fake.callsTo('chat.postMessage').filter((c) => c.args.channel === 'CFLAGS');
    expect(posts).toHaveLength(1);
    expect(result!.ts).toBe((posts[0]!.response as Json).ts);
    expect(result!.versions[0]!.text).toMatch(/Queued/);
    expect(result!.versions.length).toBeGreaterThan(2);

    // The provider got what the flags said.
    const runs = [...h.runbase.runs.values()].filter((run) => run.prompt === 'a lighthouse at dusk');
    expect(runs).toHaveLength(2);
    for (const run of runs) {
      expect(run.model).toBe('google/nano-banana-pro');
      expect(run.aspectRatio).toBe('16:9');
      expect(run.resolution).toBe('2K');
    }

    // Both images uploaded (real PNG bytes) with the external flow into the placeholder's channel.
    const completion = h.fake.callsTo('files.completeUploadExternal').find((c) => c.args.channel_id === 'CFLAGS');
    expect(completion).toBeDefined();
    expect(completion!.args.thread_ts).toBeUndefined();
    const fileIds = (completion!.args.files as Json[]).map((f) => String(f.id));
    expect(fileIds).toHaveLength(2);
    const uploads = h.fake.uploads.filter((u) => fileIds.includes(u.fileId));
    expect(uploads).toHaveLength(2);
    for (const u of uploads) {
      expect(u.bytes.subarray(1, 4).toString('latin1')).toBe('PNG');
      expect(u.bytes.length).toBe(u.declaredLength);
    }
    const filesMessage = h.fake.messagesIn('CFLAGS').find((m) => m.files.length === 2);
    expect(filesMessage).toBeDefined();

    // Summary: prompt, model, ratio, size, requester; buttons: U per image, Rerun, ratio per image, Delete.
    const text = blocksText(result!);
    expect(text).toContain('a lighthouse at dusk');
    expect(text).toContain('Nano Banana Pro (Runbase)');
    expect(text).toContain('16:9');
    expect(text).toContain('2K');
    expect(text).toContain('<@UALICE>');
    const id = jobIdOf(result!);
    expect(actionIds(result!)).toEqual([
      `imagine:upscale:${id}:0`,
      `imagine:upscale:${id}:1`,
      `imagine:vary:${id}:0`,
      `imagine:vary:${id}:1`,
      `imagine:edit:${id}:0`,
      `imagine:edit:${id}:1`,
      `imagine:rerun:${id}`,
      `imagine:remix:${id}`,
      `imagine:delete:${id}`,
      `imagine:ratio:${id}:0`,
      `imagine:ratio:${id}:1`,
    ]);
  });

  test("the Web API calls of a job go through undici's request, not the global fetch; its messages as JSON (web-api.ts)", async () => {
    acked(await h.driver.slashCommand({ user: { id: 'UWIRE', name: 'wire' }, channel: 'CWIRE', text: 'a kite' }));
    await results('CWIRE');
    const messages = [...h.fake.callsTo('chat.postMessage'), ...h.fake.callsTo('chat.update')].filter((c) => c.args.channel === 'CWIRE');
    expect(messages.length).toBeGreaterThanOrEqual(2);
    for (const c of messages) expect(c.contentType).toBe('application/json; charset=utf-8');
    const completion = h.fake.callsTo('files.completeUploadExternal').find((c) => c.args.channel_id === 'CWIRE');
    expect(completion?.contentType).toBe('application/x-www-form-urlencoded');
    // None of them, nor the upload URL's, came through the WebClient (which names itself).
    const fileIds = (completion!.args.files as { id: string }[]).map((f) => f.id);
    const uploadUrls = h.fake.callsTo('files.getUploadURLExternal').filter((c) => fileIds.includes(String(c.response.file_id)));
    expect(uploadUrls.length).toBe(fileIds.length);
    for (const c of [...messages, completion!, ...uploadUrls]) expect(c.userAgent ?? '').not.toMatch(/@slack:web-api/);
    expect(h.fake.callsTo('auth.test')[0]?.userAgent).toMatch(/@slack:web-api/);
    const toSlack = globalFetch.mock.calls.filter(([url]) => String(url instanceof Request ? url.url : url).startsWith(h.fake.apiUrl));
    expect(toSlack).toEqual([]);
  });

  test('a result is downloaded and sent to its upload URL on the results thread: its bytes never come to the event loop', async () => {
    kept.mockClear();
    downloads.mockClear();
    uploads.mockClear();
    acked(await h.driver.slashCommand({ user: { id: 'UKEPT', name: 'kept' }, channel: 'CKEPT', text: 'a lantern' }));
    await results('CKEPT');
    expect(downloads).toHaveBeenCalledTimes(1);
    // Not asked to keep the body (nothing here would read it), and nothing kept.
    expect(downloads.mock.calls[0]![2].keep).toBeUndefined();
    expect(kept).not.toHaveBeenCalled();
    const image = await (downloads.mock.results[0]!.value as ReturnType<ResultsWorker['download']>);
    expect(uploads).toHaveBeenCalledTimes(1);
    expect(uploads.mock.calls[0]![0]).toMatchObject({ path: image.path, size: image.bytes, mime: image.mime });
    // Slack stored the file whole.
    const onDisk = await readFile(image.path);
    expect(h.fake.uploads.filter((u) => u.bytes.equals(onDisk))).toHaveLength(1);
  });

  test('from a thread: the placeholder, the images and the result stay in the thread', async () => {
    const parent = h.fake.seedMessage({ channel: 'CTHREAD', user: alice.id, text: 'ideas for the poster' });
    acked(await h.driver.slashCommand({ user: alice, channel: 'CTHREAD', text: 'a poster of a cat', threadTs: parent.ts }));
    const [result] = await results('CTHREAD', 1, parent.ts);
    expect(result!.threadTs).toBe(parent.ts);
    const completion = h.fake.callsTo('files.completeUploadExternal').find((c) => c.args.channel_id === 'CTHREAD');
    expect(completion!.args.thread_ts).toBe(parent.ts);
    expect(h.fake.messagesIn('CTHREAD', null).filter((m) => m.byBot)).toHaveLength(0);
  });

  test('help and quota answer privately; /quota too', async () => {
    acked(await h.driver.slashCommand({ user: alice, channel: 'CHELP', text: 'help' }));
    const help = await ephemeralFor(alice.id, 'CHELP', '--ar');
    expect(help.text).toContain('--res');
    expect(help.text).toContain('--model');

    acked(await h.driver.slashCommand({ user: bob, channel: 'CHELP', text: 'quota' }));
    const q1 = await ephemeralFor(bob.id, 'CHELP', 'units');
    expect(q1.text).toMatch(/used 0 of 20 units today; 20 left/);

    acked(await h.driver.slashCommand({ user: bob, channel: 'CHELP', text: '', command: '/quota' }));
    await h.fake.waitFor(() => h.fake.ephemerals.filter((e) => e.user === bob.id && e.text.includes('units')).length === 2, 5000, 'second quota answer');
    expect(h.fake.messagesIn('CHELP').filter((m) => m.byBot)).toHaveLength(0);
  });

  test('a bad flag gets the parser’s sentence privately, and nothing is posted or charged', async () => {
    const creates = h.runbase.counts.create;
    acked(await h.driver.slashCommand({ user: alice, channel: 'CBAD', text: 'a cat --ar 7:3' }));
    const e = await ephemeralFor(alice.id, 'CBAD', '--ar 7:3');
    expect(e.text).toContain('is not a ratio this bot knows');
    acked(await h.driver.slashCommand({ user: alice, channel: 'CBAD', text: 'a cat --res 4K --model standard' }));
    await h.fake.waitFor(() => h.fake.ephemerals.filter((x) => x.channel === 'CBAD').length === 2, 5000, 'second refusal');
    expect(h.fake.messagesIn('CBAD').filter((m) => m.byBot)).toHaveLength(0);
    expect(h.runbase.counts.create).toBe(creates);
  });
});

describe('the modal', () => {
  test('/imagine alone opens the modal within the trigger window; a submission with file_input images runs with them', async () => {
    const cmd = acked(await h.driver.slashCommand({ user: alice, channel: 'CMODAL', text: '' }));
    const open = await h.fake.waitFor(() => h.fake.callsTo('views.open').find((c) => c.args.trigger_id === cmd.triggerId), 5000, 'views.open');
    expect(open.response.ok).toBe(true);
    const view = (open.response as { view: Json }).view;
    const blocks = view.blocks as Json[];
    const fileInput = blocks.find((b) => b.block_id === 'images')!.element as Json;
    expect(fileInput.type).toBe('file_input');
    expect(fileInput.filetypes).toEqual(['jpg', 'jpeg', 'png', 'webp']);
    for (const id of ['prompt', 'model', 'ratio', 'resolution', 'count', 'creativity']) expect(blocks.some((b) => b.block_id === id)).toBe(true);

    const red = await png(64, 48, '#cc2222');
    const blue = await sharp(await png(40, 40, '#2222cc')).jpeg().toBuffer();
    const f1 = h.fake.addUserFile({ name: 'red.png', mimetype: 'image/png', bytes: red, user: alice.id });
    const f2 = h.fake.addUserFile({ name: 'blue.jpg', mimetype: 'image/jpeg', bytes: blue, user: alice.id });
    const d = h.driver;
    const submit = acked(
      await d.submitView({
        user: alice,
        viewId: String(view.id),
        values: {
          prompt: { value: d.text('the two colours as a flag') },
          model: { value: d.option('runblob-2') },
          ratio: { value: d.option('3:2') },
          resolution: { value: d.option('1K') },
          count: { value: d.option('1') },
          creativity: { value: d.number('0.4') },
          images: { value: d.files([f1, f2]) },
        },
      }),
    );
    expect(submit.body).toBe('');

    const [result] = await results('CMODAL');
    expect(blocksText(result!)).toContain('Nano Banana 2 (RunBlob)');
    const task = [...h.runblob.tasks.values()].find((t) => t.prompt === 'the two colours as a flag')!;
    expect(task.model).toBe('v2');
    expect(task.aspectRatio).toBe('3:2');
    expect(task.temperature).toBeCloseTo(0.4);
    expect(task.images).toHaveLength(2);
    // The private files were fetched with the bot token and passed on byte for byte.
    expect(Buffer.from(task.images[0]!.split(',')[1]!, 'base64').equals(red)).toBe(true);
    expect(Buffer.from(task.images[1]!.split(',')[1]!, 'base64').equals(blue)).toBe(true);
    expect(h.fake.refusedDownloads).toEqual([]);
  });

  test('a bad value goes back into the modal as a field error', async () => {
    const cmd = acked(await h.driver.slashCommand({ user: alice, channel: 'CMODAL2', text: '' }));
    const open = await h.fake.waitFor(() => h.fake.callsTo('views.open').find((c) => c.args.trigger_id === cmd.triggerId), 5000, 'views.open');
    const view = (open.response as { view: Json }).view;
    const r = acked(await h.driver.submitView({ user: alice, viewId: String(view.id), values: { prompt: { value: h.driver.text('a cat --n 9') } } }));
    const body = JSON.parse(r.body) as { response_action: string; errors: Record<string, string> };
    expect(body.response_action).toBe('errors');
    expect(body.errors.count).toContain('--n 9');
    expect(h.fake.messagesIn('CMODAL2').filter((m) => m.byBot)).toHaveLength(0);
  });

  test('a reference the model cannot take is explained privately, naming the image', async () => {
    const cmd = acked(await h.driver.slashCommand({ user: alice, channel: 'CMODAL3', text: '' }));
    const open = await h.fake.waitFor(() => h.fake.callsTo('views.open').find((c) => c.args.trigger_id === cmd.triggerId), 5000, 'views.open');
    const view = (open.response as { view: Json }).view;
    const f = h.fake.addUserFile({ name: 'cat.png', mimetype: 'image/png', bytes: await png(20, 20), user: alice.id });
    acked(
      await h.driver.submitView({
        user: alice,
        viewId: String(view.id),
        values: { prompt: { value: h.driver.text('a cat') }, model: { value: h.driver.option('runbase-pro') }, images: { value: h.driver.files([f]) } },
      }),
    );
    const e = await ephemeralFor(alice.id, 'CMODAL3', 'Reference image 1 (cat.png)');
    expect(e.text).toContain('Runbase only takes links');
    expect(h.fake.messagesIn('CMODAL3').filter((m) => m.byBot)).toHaveLength(0);
  });

  test('an expired trigger_id is explained instead of failing silently', async () => {
    h.fake.setTriggerTtlMs(0);
    try {
      acked(await h.driver.slashCommand({ user: alice, channel: 'CEXPIRED', text: '' }));
      const e = await ephemeralFor(alice.id, 'CEXPIRED', 'open the form');
      expect(e.text).toContain('try again');
      expect(h.fake.callsTo('views.open').at(-1)!.response.error).toBe('expired_trigger_id');
    } finally {
      h.fake.setTriggerTtlMs(3000);
    }
  });
});

describe('the message shortcut', () => {
  test('"Imagine with these images" opens the modal with the message’s images and runs with them in its thread', async () => {
    const cat = await png(30, 30, '#aa8800');
    const dog = await png(32, 24, '#0088aa');
    const files = [
      h.fake.addUserFile({ name: 'cat.png', mimetype: 'image/png', bytes: cat, user: bob.id }),
      h.fake.addUserFile({ name: 'notes.txt', mimetype: 'text/plain', bytes: Buffer.from('hello'), user: bob.id }),
      h.fake.addUserFile({ name: 'dog.png', mimetype: 'image/png', bytes: dog, user: bob.id }),
    ];
    const message = h.fake.seedMessage({ channel: 'CSHORT', user: bob.id, text: 'my pets', files });
    const r = acked(await h.driver.messageShortcut({ user: alice, message, callbackId: 'imagine_with_images' }));
    const open = await h.fake.waitFor(() => h.fake.callsTo('views.open').find((c) => c.args.trigger_id === r.triggerId), 5000, 'views.open');
    const view = (open.response as { view: Json }).view;
    expect(JSON.stringify(view.blocks)).toContain('cat.png, dog.png');
    const meta = JSON.parse(String(view.private_metadata)) as Json;
    expect(JSON.stringify(meta)).toContain(files[0]!.id);
    expect(JSON.stringify(meta)).not.toContain(files[1]!.id);

    acked(
      await h.driver.submitView({
        user: alice,
        viewId: String(view.id),
        values: { prompt: { value: h.driver.text('my pets as astronauts') }, model: { value: h.driver.option('runblob-pro') } },
      }),
    );
    const [result] = await results('CSHORT', 1, message.ts);
    expect(result!.threadTs).toBe(message.ts);
    const task = [...h.runblob.tasks.values()].find((t) => t.prompt === 'my pets as astronauts')!;
    expect(task.images.map((i) => Buffer.from(i.split(',')[1]!, 'base64'))).toEqual([cat, dog]);
    expect(h.fake.callsTo('files.completeUploadExternal').find((c) => c.args.channel_id === 'CSHORT')!.args.thread_ts).toBe(message.ts);
  });

  test('on a message without images it says so privately', async () => {
    const message = h.fake.seedMessage({ channel: 'CSHORT2', user: bob.id, text: 'no pictures here' });
    acked(await h.driver.messageShortcut({ user: alice, message, callbackId: 'imagine_with_images' }));
    await ephemeralFor(alice.id, 'CSHORT2', 'no JPEG, PNG or WEBP image');
  });
});

describe('mentions', () => {
  const kim = { id: 'UKIM', name: 'kim' };

  test('"@Imagine a prompt --flags" with an image attached runs with it, answering in the message’s thread', async () => {
    const bird = await png(28, 28, '#22aa44');
    const file = h.fake.addUserFile({ name: 'bird.png', mimetype: 'image/png', bytes: bird, user: kim.id });
    const message = h.fake.seedMessage({ channel: 'CMENTION', user: kim.id, text: `<@${h.fake.botUserId}> this bird in origami --model runblob-pro --ar 3:2`, files: [file] });
    const r = acked(await h.driver.mention({ message }));
    expect(r.body).toBe('');
    const [result] = await results('CMENTION', 1, message.ts);
    expect(result!.threadTs).toBe(message.ts);
    expect(blocksText(result!)).toContain('this bird in origami');
    const task = [...h.runblob.tasks.values()].find((t) => t.prompt === 'this bird in origami')!;
    expect([task.model, task.aspectRatio]).toEqual(['pro', '3:2']);
    expect(task.images.map((i) => Buffer.from(i.split(',')[1]!, 'base64'))).toEqual([bird]);
    expect((await h.bot.engine.quota({ platform: 'slack', userId: kim.id })).used).toBe(1);
  });

  test('a non-image attachment is named in a private error, nothing is charged; a bare mention explains itself', async () => {
    const before = (await h.bot.engine.quota({ platform: 'slack', userId: kim.id })).used;
    const notes = h.fake.addUserFile({ name: 'notes.txt', mimetype: 'text/plain', bytes: Buffer.from('not an image'), user: kim.id });
    const withText = h.fake.seedMessage({ channel: 'CMENTION2', user: kim.id, text: `<@${h.fake.botUserId}> a tree`, files: [notes] });
    acked(await h.driver.mention({ message: withText }));
    expect((await ephemeralFor(kim.id, 'CMENTION2', 'notes.txt')).text).toMatch(/is not a JPEG, PNG or WEBP image/);

    const bare = h.fake.seedMessage({ channel: 'CMENTION2', user: kim.id, text: `<@${h.fake.botUserId}>` });
    acked(await h.driver.mention({ message: bare }));
    await ephemeralFor(kim.id, 'CMENTION2', 'Mention me with a prompt');

    expect((await h.bot.engine.quota({ platform: 'slack', userId: kim.id })).used).toBe(before);
  });

  test('a redelivered mention makes its images once; a retry of one that never arrived is handled', async () => {
    const before = (await h.bot.engine.quota({ platform: 'slack', userId: kim.id })).used;
    const lamp = h.fake.seedMessage({ channel: 'CMENTION3', user: kim.id, text: `<@${h.fake.botUserId}> a redelivered lamp` });
    acked(await h.driver.mention({ message: lamp }));
    acked(await h.driver.mention({ message: lamp, retryNum: 1 }));
    await results('CMENTION3', 1, lamp.ts);
    const lost = h.fake.seedMessage({ channel: 'CMENTION3', user: kim.id, text: `<@${h.fake.botUserId}> a lamp whose first delivery was lost` });
    acked(await h.driver.mention({ message: lost, retryNum: 2 }));
    await results('CMENTION3', 1, lost.ts);
    await new Promise((r) => setTimeout(r, 300));
    expect(h.fake.callsTo('chat.postMessage').filter((c) => c.args.channel === 'CMENTION3')).toHaveLength(2);
    expect((await h.bot.engine.quota({ platform: 'slack', userId: kim.id })).used).toBe(before + 2);
  });
});

describe('buttons', () => {
  let result: FakeMessage;
  let jobId: string;

  beforeAll(async () => {
    acked(await h.driver.slashCommand({ user: alice, channel: 'CBTN', text: 'a red bicycle --n 2 --ar 4:3' }));
    [result] = (await results('CBTN')) as [FakeMessage];
    jobId = jobIdOf(result);
  });

  test('Upscale 4K on image 2: a new job at 4K with that image as reference, replying in the thread, charged to the clicker', async () => {
    const before = await h.bot.engine.quota({ platform: 'slack', userId: bob.id });
    acked(await h.driver.clickButton({ user: bob, message: result, actionId: `imagine:upscale:${jobId}:1` }));
    const [up] = await results('CBTN', 1, result.ts);
    expect(blocksText(up!)).toContain('Upscaled image 2 to 4K');
    expect(blocksText(up!)).toContain('<@UBOB>');
    const parent = await h.bot.engine.getJob(jobId);
    const run = [...h.runbase.runs.values()].find((r) => r.resolution === '4K' && r.prompt === 'a red bicycle')!;
    expect(run.input.image_urls).toEqual([parent!.tasks[1]!.image!.sourceUrl]);
    const after = await h.bot.engine.quota({ platform: 'slack', userId: bob.id });
    expect(after.used - before.used).toBe(4);
  });

  test('Change ratio on image 1 and Rerun make new jobs with the same meaning as on Discord', async () => {
    acked(await h.driver.clickButton({ user: alice, message: result, actionId: `imagine:ratio:${jobId}:0`, selectedValue: '9:16' }));
    acked(await h.driver.clickButton({ user: alice, message: result, actionId: `imagine:rerun:${jobId}` }));
    const replies = await results('CBTN', 3, result.ts);
    const texts = replies.map(blocksText);
    expect(texts.some((t) => t.includes('Remade image 1 at 9:16'))).toBe(true);
    expect(texts.some((t) => t.includes('Rerun'))).toBe(true);
    const ratioRun = [...h.runbase.runs.values()].find((r) => r.aspectRatio === '9:16' && r.prompt === 'a red bicycle')!;
    expect((ratioRun.input.image_urls as string[]).length).toBe(1);
    const reruns = [...h.runbase.runs.values()].filter((r) => r.prompt === 'a red bicycle' && r.aspectRatio === '4:3' && r.resolution === '1K');
    expect(reruns).toHaveLength(4); // the original two and the rerun's two
  });

  test('Delete: refused to someone else, done for the requester (message and files)', async () => {
    acked(await h.driver.clickButton({ user: bob, message: result, actionId: `imagine:delete:${jobId}` }));
    const e = await ephemeralFor(bob.id, 'CBTN', 'can delete them');
    expect(e.text).toContain('<@UALICE>');
    expect(h.fake.message('CBTN', result.ts)).toBeDefined();

    acked(await h.driver.clickButton({ user: alice, message: result, actionId: `imagine:delete:${jobId}` }));
    await h.fake.waitFor(() => !h.fake.message('CBTN', result.ts), 5000, 'deleted message');
    const parent = await h.bot.engine.getJob(jobId);
    const ids = (parent!.request.location as { fileIds: string[] }).fileIds;
    expect(ids).toHaveLength(2);
    for (const id of ids) expect(h.fake.files.get(id)!.deleted).toBe(true);
  });

  test('a click on a job the store does not know gets a specific private answer', async () => {
    const forged = { ...result, blocks: JSON.parse(blocksText(result).replaceAll(jobId, 'NoSuchJob123')) as unknown[] };
    acked(await h.driver.clickButton({ user: bob, message: forged, actionId: 'imagine:rerun:NoSuchJob123' }));
    await ephemeralFor(bob.id, 'CBTN', 'too old or was deleted');
  });
});

describe('restarts', () => {
  test('buttons posted before a restart work after it', async () => {
    acked(await h.driver.slashCommand({ user: alice, channel: 'CRESTART', text: 'a paper boat' }));
    const [result] = await results('CRESTART');
    await h.restart();
    acked(await h.driver.clickButton({ user: alice, message: result!, actionId: `imagine:rerun:${jobIdOf(result!)}` }));
    const [rerun] = await results('CRESTART', 1, result!.ts);
    expect(blocksText(rerun!)).toContain('a paper boat');
  });

  test('a job running during a restart is resumed and delivered into its placeholder', async () => {
    acked(await h.driver.slashCommand({ user: alice, channel: 'CRESUME', text: 'a slow sunrise [slow:1500]' }));
    const placeholder = await h.fake.waitFor(() => h.fake.messagesIn('CRESUME').find((m) => m.byBot), 5000, 'placeholder');
    await h.restart();
    const [result] = await results('CRESUME');
    expect(result!.ts).toBe(placeholder.ts);
    expect(blocksText(result!)).toContain('a slow sunrise');
    expect(blocksText(result!)).not.toContain("Couldn't make");
    expect(h.fake.uploads.filter((u) => h.fake.files.get(u.fileId)?.channels.includes('CRESUME'))).toHaveLength(1);
  });
});

describe('users, quotas and failures', () => {
  test('two users at once each get their own placeholder and result', async () => {
    const carol = { id: 'UCAROL' };
    const dave = { id: 'UDAVE' };
    await Promise.all([
      h.driver.slashCommand({ user: carol, channel: 'CTWO', text: 'a green apple' }).then(acked),
      h.driver.slashCommand({ user: dave, channel: 'CTWO', text: 'a yellow pear --n 2' }).then(acked),
    ]);
    const found = await results('CTWO', 2);
    const apple = found.find((m) => blocksText(m).includes('a green apple'))!;
    const pear = found.find((m) => blocksText(m).includes('a yellow pear'))!;
    expect(blocksText(apple)).toContain('<@UCAROL>');
    expect(blocksText(pear)).toContain('<@UDAVE>');
    expect((await h.bot.engine.quota({ platform: 'slack', userId: carol.id })).used).toBe(1);
    expect((await h.bot.engine.quota({ platform: 'slack', userId: dave.id })).used).toBe(2);
  });

  test('quota exhaustion: the refusal is private, specific, and nothing is posted', async () => {
    const erin = { id: 'UERIN' };
    acked(await h.driver.slashCommand({ user: erin, channel: 'CQUOTA', text: 'a castle --res 4K --n 4' }));
    await results('CQUOTA');
    acked(await h.driver.slashCommand({ user: erin, channel: 'CQUOTA', text: 'a castle --res 4K --n 2' }));
    const e = await ephemeralFor(erin.id, 'CQUOTA', 'out of image quota');
    expect(e.text).toContain('this needs 8 units and you have 4 units left');
    expect(h.fake.callsTo('chat.postMessage').filter((c) => c.args.channel === 'CQUOTA')).toHaveLength(1);
  });

  test.each([
    ['[fail:MODERATION_FAILED]', 'content policy'],
    ['[fail:SOMETHING_ODD]', 'could not make this image'],
  ])('a provider failure %s updates the placeholder and tells the requester privately', async (marker, sentence) => {
    const channel = `CFAIL${marker.length}${sentence.length}`;
    acked(await h.driver.slashCommand({ user: alice, channel, text: `a statue ${marker}` }));
    const e = await ephemeralFor(alice.id, channel, sentence);
    expect(e.text).toContain('refunded');
    const msg = await h.fake.waitFor(() => h.fake.messagesIn(channel).find((m) => blocksText(m).includes("Couldn't make your image")), RESULT_TIMEOUT_MS, 'failure message');
    expect(actionIds(msg).some((a) => a.startsWith('imagine:rerun:'))).toBe(true);
  });

  test('images Slack keeps refusing: after the last retry the placeholder and a private note say so (never a placeholder stuck on "Generating")', async () => {
    const channel = 'CNOPOST';
    // Every delivery attempt (1 + the harness's 2 retries) fails at the upload's last step.
    h.fake.injectError('files.completeUploadExternal', 'internal_error', 3, (args) => args.channel_id === channel);
    acked(await h.driver.slashCommand({ user: { id: 'UJUDY', name: 'judy' }, channel, text: 'an undeliverable owl' }));
    const e = await ephemeralFor('UJUDY', channel, 'would not take it');
    expect(e.text).toContain('(internal_error)');
    expect(e.text).toContain('next time the bot starts');
    const placeholder = h.fake.messagesIn(channel)[0]!;
    expect(blocksText(placeholder)).toContain('Your image is ready for');
    expect(h.fake.callsTo('files.completeUploadExternal').filter((c) => c.args.channel_id === channel)).toHaveLength(3);
  });

  test('an operator problem (no credits) says the operator must top up', async () => {
    const before = h.runbase.balanceMicros;
    h.runbase.balanceMicros = 0;
    try {
      acked(await h.driver.slashCommand({ user: alice, channel: 'CCREDIT', text: 'a coin' }));
      await ephemeralFor(alice.id, 'CCREDIT', 'must top up credits');
    } finally {
      h.runbase.balanceMicros = before;
    }
  });
});

describe('channels the bot is not in', () => {
  test('a public channel is joined, then used as usual', async () => {
    acked(await h.driver.slashCommand({ user: alice, channel: 'CNOTJOINED', text: 'a lantern' }));
    await results('CNOTJOINED');
    expect(h.fake.callsTo('conversations.join').map((c) => c.args.channel)).toEqual(['CNOTJOINED']);
  });

  test('a private conversation it cannot join: the result goes to the requester’s DM, and they are told why', async () => {
    const r = acked(await h.driver.slashCommand({ user: alice, channel: 'GPRIVATE', text: 'a secret garden' }));
    const post = await h.fake.waitFor(() => h.fake.responseUrlPosts.find((p) => r.responseUrl.endsWith(p.id)), RESULT_TIMEOUT_MS, 'response_url answer');
    expect(post.body).toMatchObject({ response_type: 'ephemeral' });
    expect(String(post.body.text)).toContain('direct messages');
    const [dm] = await results('DUALICE');
    expect(blocksText(dm!)).toContain('a secret garden');
    expect(h.fake.messagesIn('DUALICE').some((m) => m.files.length === 1)).toBe(true);
  });

  test('a private channel with a C… id, which cannot be joined, also moves the job to the DM', async () => {
    const ivan = { id: 'UIVAN', name: 'ivan' };
    const r = acked(await h.driver.slashCommand({ user: ivan, channel: 'CPRIVATE', text: 'a hidden lake' }));
    const [dm] = await results('DUIVAN');
    expect(blocksText(dm!)).toContain('a hidden lake');
    expect(h.fake.callsTo('conversations.join').some((c) => c.args.channel === 'CPRIVATE' && c.response.error === 'method_not_supported_for_channel_type')).toBe(true);
    const told = await h.fake.waitFor(() => h.fake.responseUrlPosts.find((p) => r.responseUrl.endsWith(p.id)), RESULT_TIMEOUT_MS, 'response_url answer');
    expect(String(told.body.text)).toContain('direct messages');
    expect(h.fake.messagesIn('CPRIVATE')).toEqual([]);
  });
});

describe('Slack transport rules', () => {
  test('a form body sent as "application/x-www-form-urlencoded; charset=utf-8" is read like any other', async () => {
    const { form } = h.driver.payloads.slashCommand({ user: { id: 'UFRANK', name: 'frank' }, channel: 'CCHARSET', text: 'a charset test' });
    acked(await h.driver.post(new URLSearchParams(form).toString(), {}, 'application/x-www-form-urlencoded; charset=UTF-8'));
    const [result] = await results('CCHARSET');
    expect(blocksText(result!)).toContain('a charset test');
  });

  test('a click whose action has only action_id and value (no type) still works; an unreadable one is explained', async () => {
    const grace = { id: 'UGRACE', name: 'grace' };
    acked(await h.driver.slashCommand({ user: grace, channel: 'CLEAN', text: 'a minimal click' }));
    const [result] = await results('CLEAN');
    const { payload } = h.driver.payloads.blockActions({ user: grace, message: result!, actionId: `imagine:rerun:${jobIdOf(result!)}` });
    const action = (payload.actions as Json[])[0]!;
    payload.actions = [{ action_id: action.action_id, value: action.value }];
    acked(await h.driver.post(new URLSearchParams({ payload: JSON.stringify(payload) }).toString()));
    await results('CLEAN', 2);

    const { payload: broken } = h.driver.payloads.blockActions({ user: grace, message: result!, actionId: `imagine:rerun:${jobIdOf(result!)}` });
    broken.actions = [{ action_id: (broken.actions as Json[])[0]!.action_id, value: { not: 'a string' } }];
    acked(await h.driver.post(new URLSearchParams({ payload: JSON.stringify(broken) }).toString()));
    expect((await ephemeralFor(grace.id, 'CLEAN', "couldn't read that request")).text).toContain('nothing was charged');
  });

  test('bad signatures, missing signatures and stale timestamps are refused with 401 and never run', async () => {
    const body = new URLSearchParams({ command: '/imagine', text: 'forged', user_id: 'UX', channel_id: 'CSEC', trigger_id: 't', team_id: 'T' }).toString();
    expect((await h.driver.post(body, { secret: 'not-the-secret' })).status).toBe(401);
    expect((await h.driver.post(body, { unsigned: true })).status).toBe(401);
    const stale = Math.floor(Date.now() / 1000) - 6 * 60;
    expect((await h.driver.post(body, { timestampSec: stale })).status).toBe(401);
    // Correctly signed but stale: still refused, even through the high-level helper.
    expect((await h.driver.slashCommand({ user: alice, channel: 'CSEC', text: 'forged too' }, { timestampSec: stale })).status).toBe(401);
    await new Promise((r) => setTimeout(r, 300));
    expect(h.fake.calls.filter((c) => c.args.channel === 'CSEC' || c.args.channel_id === 'CSEC')).toEqual([]);
    expect([...h.runbase.runs.values()].filter((run) => run.prompt.startsWith('forged'))).toEqual([]);
  });

  test('acks first: while another request to /slack/events is still arriving, an acknowledged command waits to post its placeholder', async () => {
    // A request whose body is still on its way (headers sent, 10 of 100 body bytes).
    const slow = connect(h.bot.http.port, '127.0.0.1');
    await new Promise<void>((resolve) => slow.once('connect', () => resolve()));
    slow.write('POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ncommand=/i');
    await new Promise((r) => setTimeout(r, 50));
    acked(await h.driver.slashCommand({ user: alice, channel: 'CHOLD', text: 'held behind a slow request' }));
    await new Promise((r) => setTimeout(r, 400));
    // Acknowledged at once, but its work (the placeholder) waits while a request is in flight…
    expect(h.fake.messagesIn('CHOLD').filter((m) => m.byBot)).toEqual([]);
    // …and goes as soon as that request is over.
    slow.destroy();
    await h.fake.waitFor(() => h.fake.messagesIn('CHOLD').find((m) => m.byBot), 2_000, 'placeholder once the slow request ended');
    await results('CHOLD');
  });

  test('a short 429 on an interactive call is waited out; a long one never makes delivery sleep or re-upload', async () => {
    h.fake.injectRateLimit('chat.postMessage', 1, 1, (a) => a.channel === 'C429');
    // The first two attempts to show the result (its blocks carry the Delete button; the
    // placeholder's do not) are refused for "10 minutes". Set up before the command: the job takes
    // 150 ms, so its result may follow the placeholder within one poll of the fake.
    h.fake.injectRateLimit('chat.update', 2, 600, (a) => a.channel === 'C429' && JSON.stringify(a.blocks ?? []).includes('imagine:delete'));
    const r = acked(await h.driver.slashCommand({ user: alice, channel: 'C429', text: 'a kite --n 2' }));
    expect(r.ackMs).toBeLessThan(1000);
    await h.fake.waitFor(() => h.fake.messagesIn('C429').find((m) => m.byBot), 5000, 'placeholder after a 1 s Retry-After');
    const started = Date.now();
    const [result] = await results('C429');
    // Retry-After said 10 minutes twice; the engine's own delivery retries got it through long before.
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(h.fake.calls.filter((c) => c.method === 'chat.update' && c.status === 429 && c.args.channel === 'C429')).toHaveLength(2);
    const completions = h.fake.callsTo('files.completeUploadExternal').filter((c) => c.args.channel_id === 'C429');
    expect(completions).toHaveLength(1);
    expect(blocksText(result!)).toContain('a kite');
  });

  test('a placeholder rate limited for longer than an interactive wait is posted once Slack allows, or not at all if the result came first', async () => {
    // A slow job: the placeholder appears after the 3 s Retry-After, and becomes the result.
    h.fake.injectRateLimit('chat.postMessage', 1, 3, (a) => a.channel === 'CLATE');
    acked(await h.driver.slashCommand({ user: { id: 'ULEO', name: 'leo' }, channel: 'CLATE', text: 'a late lantern [slow:6000]' }));
    const placeholder = await h.fake.waitFor(() => h.fake.messagesIn('CLATE').find((m) => m.byBot && !isResult(m)), 6_000, 'the late placeholder');
    expect(placeholder.text).toMatch(/Queued|Generating/);
    const [result] = await results('CLATE');
    expect(result!.ts).toBe(placeholder.ts);

    // A fast job: the result is posted (as a new message) before the Retry-After ends; no stale
    // placeholder follows it.
    h.fake.injectRateLimit('chat.postMessage', 1, 3, (a) => a.channel === 'CLATE2' && !JSON.stringify(a.blocks ?? []).includes('imagine:delete'));
    acked(await h.driver.slashCommand({ user: { id: 'ULEO', name: 'leo' }, channel: 'CLATE2', text: 'a quick lantern' }));
    await results('CLATE2');
    await new Promise((r) => setTimeout(r, 3_500));
    expect(h.fake.messagesIn('CLATE2').filter((m) => m.byBot && m.files.length === 0)).toHaveLength(1);
  });

  test('never tries to update an ephemeral message, and every Web API call it made was valid', () => {
    const errors = h.fake.calls.filter((c) => c.status === 200 && c.response.ok === false);
    const expected = (c: (typeof errors)[number]) =>
      c.response.error === 'expired_trigger_id' ||
      (c.response.error === 'not_in_channel' && ['CNOTJOINED', 'GPRIVATE', 'CPRIVATE'].includes(String(c.args.channel))) ||
      (c.response.error === 'method_not_supported_for_channel_type' && c.args.channel === 'CPRIVATE') ||
      (c.response.error === 'internal_error' && c.args.channel_id === 'CNOPOST');
    expect(errors.filter((c) => !expected(c)).map((c) => `${c.method}: ${String(c.response.error)}`)).toEqual([]);
    const ephemeralTs = new Set(h.fake.ephemerals.map((e) => e.ts));
    expect(h.fake.callsTo('chat.update').filter((c) => ephemeralTs.has(String(c.args.ts)))).toEqual([]);
    expect(acks.length).toBeGreaterThan(20);
    expect(Math.max(...acks.map((a) => a.ackMs))).toBeLessThan(ACK_DEADLINE_MS);
  });
});
