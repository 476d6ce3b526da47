/**
 * Edit, Vary and Remix on Slack end to end (issue 11): the real Bolt App against the fake Slack
 * and the fake providers. Each new job is checked where it matters: the provider's recorded
 * request (the reference is the right image), the quota of whoever clicked, and the thread.
 */
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import type { FakeMessage } from '../fakes/slack/fake-slack.ts';
import type { AckResult } from '../fakes/slack/driver.ts';
import { acked, startSlackHarness, type SlackHarness } from './slack-harness.ts';

const RESULT_TIMEOUT_MS = 60_000;
vi.setConfig({ testTimeout: 180_000, hookTimeout: 120_000 });
const alice = { id: 'UALICE', name: 'alice' };
const bob = { id: 'UBOB', name: 'bob' };
const carol = { id: 'UCAROL', name: 'carol' };

let h: SlackHarness;
beforeAll(async () => {
  h = await startSlackHarness();
});
afterAll(async () => {
  await h?.close();
});

type Json = Record<string, unknown>;
const blocksText = (m: FakeMessage) => JSON.stringify(m.blocks ?? []);
const isResult = (m: FakeMessage) => blocksText(m).includes('imagine:delete:');
const jobIdOf = (m: FakeMessage) => /imagine:delete:([A-Za-z0-9_-]+)/.exec(blocksText(m))![1]!;

async function results(channel: string, count: number, threadTs?: string): Promise<FakeMessage[]> {
  return h.fake.waitFor(
    () => {
      const found = h.fake.messagesIn(channel, threadTs).filter(isResult);
      return found.length >= count ? found : undefined;
    },
    RESULT_TIMEOUT_MS,
    `${count} result(s) in ${channel}`,
  );
}

const used = async (user: { id: string }) => (await h.bot.engine.quota({ platform: 'slack', userId: user.id })).used;
/** The image URL the provider made for `jobId`'s image `index` (what a reference to it must be). */
const imageUrl = async (jobId: string, index: number) => (await h.bot.engine.getJob(jobId))!.tasks[index]!.image!.sourceUrl;
const runsFor = (prompt: string) => [...h.runbase.runs.values()].filter((r) => r.prompt === prompt);

/** Clicks a form button and returns the view Slack opened with the click's trigger_id. */
async function openForm(user: typeof alice, message: FakeMessage, actionId: string): Promise<Json> {
  const click = acked(await h.driver.clickButton({ user, message, actionId }));
  const open = await h.fake.waitFor(() => h.fake.callsTo('views.open').find((c) => c.args.trigger_id === click.triggerId), 5000, 'views.open');
  expect(open.response.ok).toBe(true);
  return (open.response as { view: Json }).view;
}

async function submitForm(user: typeof alice, view: Json, text: string): Promise<AckResult> {
  return acked(await h.driver.submitView({ user, viewId: String(view.id), values: { text: { value: h.driver.text(text) } } }));
}

describe('Edit, Vary and Remix', () => {
  test('Edit chains two deep, each from the image it was clicked on, charged to whoever submitted, in the thread', async () => {
    acked(await h.driver.slashCommand({ user: alice, channel: 'CEDIT', text: 'a quiet harbour --n 2 --ar 4:3' }));
    const [root] = (await results('CEDIT', 1)) as [FakeMessage];
    const rootJob = jobIdOf(root);

    // Bob edits image 2 of Alice's result.
    const bobBefore = await used(bob);
    const view = await openForm(bob, root, `imagine:edit:${rootJob}:1`);
    expect(view.callback_id).toBe(`imagine:edit:${rootJob}:1`);
    expect(JSON.stringify(view.title)).toContain('Edit image 2');
    expect((await submitForm(bob, view, 'make the sky purple')).body).toBe('');
    const [first] = (await results('CEDIT', 1, root.ts)) as [FakeMessage];
    expect(blocksText(first)).toContain('Edited image 2');
    expect(blocksText(first)).toContain('make the sky purple');
    expect(blocksText(first)).toContain('<@UBOB>');
    const [run1] = runsFor('make the sky purple');
    expect(run1!.input.image_urls).toEqual([await imageUrl(rootJob, 1)]);
    expect(run1!.aspectRatio).toBe('4:3');
    expect(await used(bob)).toBe(bobBefore + 1);

    // Carol edits Bob's edit: the reference is the edit's image, not the original's.
    const firstJob = jobIdOf(first);
    const carolBefore = await used(carol);
    const view2 = await openForm(carol, first, `imagine:edit:${firstJob}:0`);
    await submitForm(carol, view2, 'add a lighthouse');
    const replies = await results('CEDIT', 2, root.ts);
    const second = replies.find((m) => blocksText(m).includes('add a lighthouse'))!;
    expect(blocksText(second)).toContain('Edited image 1');
    const [run2] = runsFor('add a lighthouse');
    expect(run2!.input.image_urls).toEqual([await imageUrl(firstJob, 0)]);
    expect(await used(carol)).toBe(carolBefore + 1);
    // Each job charged once, to its own requester.
    expect(runsFor('make the sky purple')).toHaveLength(1);
    expect(runsFor('add a lighthouse')).toHaveLength(1);
    // The edit carries the same buttons, so edits chain.
    expect(blocksText(second)).toContain(`imagine:edit:${jobIdOf(second)}:0`);
  });

  test('an empty instruction is answered inside the form, and nothing starts', async () => {
    acked(await h.driver.slashCommand({ user: alice, channel: 'CEMPTY', text: 'a tin robot' }));
    const [root] = (await results('CEMPTY', 1)) as [FakeMessage];
    const view = await openForm(alice, root, `imagine:edit:${jobIdOf(root)}:0`);
    const answer = await submitForm(alice, view, '   ');
    expect(answer.body).toContain('errors');
    expect(answer.body).toContain('The prompt is empty');
  });

  test('Vary: same prompt from that image, for the clicker', async () => {
    acked(await h.driver.slashCommand({ user: alice, channel: 'CVARY', text: 'a glass owl --n 2' }));
    const [root] = (await results('CVARY', 1)) as [FakeMessage];
    const jobId = jobIdOf(root);
    const before = await used(bob);
    acked(await h.driver.clickButton({ user: bob, message: root, actionId: `imagine:vary:${jobId}:0` }));
    const [varied] = (await results('CVARY', 1, root.ts)) as [FakeMessage];
    expect(blocksText(varied)).toContain('Varied image 1');
    const runs = runsFor('a glass owl').filter((r) => (r.input.image_urls as string[] | undefined)?.length);
    expect(runs).toHaveLength(2); // the parent's count
    for (const r of runs) expect(r.input.image_urls).toEqual([await imageUrl(jobId, 0)]);
    expect(await used(bob)).toBe(before + 2);
  });

  test('Remix: the form holds the prompt and its flags; the changed text runs as /imagine reads it', async () => {
    acked(await h.driver.slashCommand({ user: alice, channel: 'CREMIX', text: 'a paper crane --ar 16:9 --res 2K' }));
    const [root] = (await results('CREMIX', 1)) as [FakeMessage];
    const view = await openForm(alice, root, `imagine:remix:${jobIdOf(root)}`);
    const input = ((view.blocks as Json[])[0]!.element as Json).initial_value as string;
    expect(input).toBe('a paper crane --model runbase-pro --ar 16:9 --res 2K --n 1');
    await submitForm(alice, view, input.replace('a paper crane', 'a paper dragon').replace('--ar 16:9', '--ar 1:1'));
    const [remix] = (await results('CREMIX', 1, root.ts)) as [FakeMessage];
    expect(blocksText(remix)).toContain('Remix');
    const [run] = runsFor('a paper dragon');
    expect(run).toMatchObject({ aspectRatio: '1:1', resolution: '2K' });
  });

  test('an Edit form opened before a restart is submitted after it', async () => {
    acked(await h.driver.slashCommand({ user: alice, channel: 'CRESTART', text: 'a snowy cabin' }));
    const [root] = (await results('CRESTART', 1)) as [FakeMessage];
    const jobId = jobIdOf(root);
    const view = await openForm(alice, root, `imagine:edit:${jobId}:0`);
    await h.restart();
    await submitForm(alice, view, 'at night');
    const [edit] = (await results('CRESTART', 1, root.ts)) as [FakeMessage];
    expect(blocksText(edit)).toContain('Edited image 1');
    expect(runsFor('at night')[0]!.input.image_urls).toEqual([await imageUrl(jobId, 0)]);
    // And a Vary click on a pre-restart result.
    acked(await h.driver.clickButton({ user: alice, message: root, actionId: `imagine:vary:${jobId}:0` }));
    await results('CRESTART', 2, root.ts);
  });

  test('a mention in a result’s thread edits its latest result ("2:" picks image 2), charged to whoever mentioned', async () => {
    acked(await h.driver.slashCommand({ user: alice, channel: 'CREFINE', text: 'a mountain lake --n 2' }));
    const [root] = (await results('CREFINE', 1)) as [FakeMessage];
    const rootJob = jobIdOf(root);
    const before = await used(bob);
    const reply = h.fake.seedMessage({ channel: 'CREFINE', user: bob.id, threadTs: root.ts, text: `<@${h.fake.botUserId}> 2: add a red canoe` });
    acked(await h.driver.mention({ message: reply }));
    const [first] = (await results('CREFINE', 1, root.ts)) as [FakeMessage];
    expect(blocksText(first)).toContain('Edited image 2');
    expect(runsFor('add a red canoe')[0]!.input.image_urls).toEqual([await imageUrl(rootJob, 1)]);
    expect(await used(bob)).toBe(before + 1);

    // The thread's latest result is now the edit: the next mention edits it (after a restart too).
    await h.restart();
    const again = h.fake.seedMessage({ channel: 'CREFINE', user: alice.id, threadTs: root.ts, text: `<@${h.fake.botUserId}> make it winter` });
    acked(await h.driver.mention({ message: again }));
    await results('CREFINE', 2, root.ts);
    expect(runsFor('make it winter')[0]!.input.image_urls).toEqual([await imageUrl(jobIdOf(first), 0)]);
    expect(runsFor('make it winter')).toHaveLength(1);

    // "help" in the thread is still help, not an edit.
    const runs = h.runbase.runs.size;
    const help = h.fake.seedMessage({ channel: 'CREFINE', user: alice.id, threadTs: root.ts, text: `<@${h.fake.botUserId}> help` });
    acked(await h.driver.mention({ message: help }));
    await h.fake.waitFor(() => h.fake.ephemerals.find((e) => e.user === alice.id && e.channel === 'CREFINE' && e.text.includes('How to use /imagine')), 5000, 'help');
    expect(h.runbase.runs.size).toBe(runs);
  });

  test('a mention in a thread that holds no result is a new prompt, as before', async () => {
    const top = h.fake.seedMessage({ channel: 'CNOREFINE', user: alice.id, text: 'just chatting' });
    const inThread = h.fake.seedMessage({ channel: 'CNOREFINE', user: alice.id, threadTs: top.ts, text: `<@${h.fake.botUserId}> a brand new owl` });
    acked(await h.driver.mention({ message: inThread }));
    await results('CNOREFINE', 1, top.ts);
    expect(runsFor('a brand new owl')[0]!.input.image_urls ?? []).toEqual([]);
  });
});
