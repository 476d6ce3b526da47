/**
 * /settings on Slack end to end (issue 10, point 3): `/settings` alone opens one private modal
 * prefilled with the user's defaults; its submission is checked (field errors go back into the
 * modal), saved in the store and confirmed privately; `/settings --flags` sets them directly.
 * /imagine then uses them for every option not given.
 */
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import type { SlackUser } from '../fakes/slack/driver.ts';
import type { FakeEphemeral, FakeMessage } from '../fakes/slack/fake-slack.ts';
import { acked, startSlackHarness, type SlackHarness } from './slack-harness.ts';
import type { Requester } from '../../src/engine/request.ts';

const WAIT_MS = 60_000;
vi.setConfig({ testTimeout: 180_000, hookTimeout: 120_000 });

const bea = { id: 'U0BEA', name: 'bea' };
const dan = { id: 'U0DAN', name: 'dan' };

let h: SlackHarness;
beforeAll(async () => {
  h = await startSlackHarness();
});
afterAll(async () => {
  await h?.close();
});

type Json = Record<string, unknown>;
const requester = (u: SlackUser): Requester => ({ platform: 'slack', userId: u.id, scope: h.fake.teamId, channelId: 'C0SET' });

async function ephemeral(user: SlackUser, channel: string, includes: string, from: number): Promise<FakeEphemeral> {
  return h.fake.waitFor(
    () => h.fake.ephemerals.slice(from).find((e) => e.user === user.id && e.channel === channel && e.text.includes(includes)),
    WAIT_MS,
    `an ephemeral with "${includes}"`,
  );
}

/** `/settings` alone: the modal Slack was asked to open with this command's trigger_id. */
async function openSettings(user: SlackUser, channel: string): Promise<Json> {
  const cmd = acked(await h.driver.slashCommand({ user, channel, command: '/settings', text: '' }));
  expect(cmd.body).toBe('');
  const open = await h.fake.waitFor(() => h.fake.callsTo('views.open').find((c) => c.args.trigger_id === cmd.triggerId), 5000, 'views.open');
  return (open.response as { view: Json }).view;
}
const initialOf = (view: Json, block: string) => {
  const b = (view.blocks as Json[]).find((x) => x.block_id === block);
  return ((b?.element as Json | undefined)?.initial_option as Json | undefined)?.value;
};

async function resultJob(channel: string, from: number) {
  const m: FakeMessage = await h.fake.waitFor(
    () => h.fake.messagesIn(channel).slice(from).find((x) => x.byBot && JSON.stringify(x.blocks ?? []).includes('imagine:delete:')),
    WAIT_MS,
    `a result in ${channel}`,
  );
  const id = /imagine:delete:([^"]+)/.exec(JSON.stringify(m.blocks))![1]!;
  return (await h.bot.engine.getJob(id))!;
}

describe('/settings on Slack', () => {
  test('the modal shows nothing set, saves the chosen defaults, and /imagine uses them', async () => {
    const view = await openSettings(bea, 'C0SET');
    expect(view.callback_id).toBe('imagine_settings');
    for (const block of ['model', 'ratio', 'resolution', 'count']) expect(initialOf(view, block)).toBe('none');
    // /imagine's private option is Discord's only: no such default on Slack.
    expect((view.blocks as Json[]).map((b) => b.block_id)).not.toContain('private');

    const d = h.driver;
    const from = h.fake.ephemerals.length;
    const r = acked(
      await d.submitView({
        user: bea,
        viewId: String(view.id),
        values: { model: { value: d.option('runblob-2') }, ratio: { value: d.option('16:9') }, count: { value: d.option('2') }, resolution: { value: d.option('none') } },
      }),
    );
    expect(r.body).toBe('');
    await ephemeral(bea, 'C0SET', 'Saved: your defaults', from);
    expect(await h.bot.engine.governance.preferences(requester(bea))).toEqual({ model: 'runblob-2', ratio: '16:9', count: 2 });

    // Opened again: prefilled with what was saved.
    const again = await openSettings(bea, 'C0SET');
    expect([initialOf(again, 'model'), initialOf(again, 'ratio'), initialOf(again, 'count'), initialOf(again, 'resolution')]).toEqual(['runblob-2', '16:9', '2', 'none']);

    const before = h.fake.messagesIn('C0SET').length;
    acked(await h.driver.slashCommand({ user: bea, channel: 'C0SET', text: 'a fox in the snow' }));
    const job = await resultJob('C0SET', before);
    expect([job.request.model, job.request.ratio, job.request.count]).toEqual(['runblob-2', '16:9', 2]);

    // An option given to /imagine wins over the saved default.
    const before2 = h.fake.messagesIn('C0SET').length;
    acked(await h.driver.slashCommand({ user: bea, channel: 'C0SET', text: 'a fox in the snow --ar 1:1 --n 1' }));
    const job2 = await resultJob('C0SET', before2);
    expect([job2.request.model, job2.request.ratio, job2.request.count]).toEqual(['runblob-2', '1:1', 1]);
  });

  test('a value the bot cannot take goes back into the modal under its field; nothing is saved', async () => {
    const view = await openSettings(dan, 'C0SET2');
    const r = acked(await h.driver.submitView({ user: dan, viewId: String(view.id), values: { ratio: { value: h.driver.option('7:3') } } }));
    const body = JSON.parse(r.body) as { response_action: string; errors: Record<string, string> };
    expect(body.response_action).toBe('errors');
    expect(body.errors.ratio).toContain('7:3');
    expect(await h.bot.engine.governance.preferences(requester(dan))).toEqual({});
  });

  test('with text: flags set the defaults directly (the others are kept), reset clears them, a non-flag and --private are refused', async () => {
    let from = h.fake.ephemerals.length;
    acked(await h.driver.slashCommand({ user: dan, channel: 'C0SET2', command: '/settings', text: '--model runblob-pro --ar 3:2' }));
    await ephemeral(dan, 'C0SET2', 'Saved: your defaults', from);
    from = h.fake.ephemerals.length;
    acked(await h.driver.slashCommand({ user: dan, channel: 'C0SET2', command: '/settings', text: '--n 3' }));
    await ephemeral(dan, 'C0SET2', 'Saved: your defaults', from);
    expect(await h.bot.engine.governance.preferences(requester(dan))).toEqual({ model: 'runblob-pro', ratio: '3:2', count: 3 });

    from = h.fake.ephemerals.length;
    acked(await h.driver.slashCommand({ user: dan, channel: 'C0SET2', command: '/settings', text: '--private on' }));
    await ephemeral(dan, 'C0SET2', '--private only works on Discord', from);

    from = h.fake.ephemerals.length;
    acked(await h.driver.slashCommand({ user: dan, channel: 'C0SET2', command: '/settings', text: 'make it blue' }));
    await ephemeral(dan, 'C0SET2', '"make it blue" is not a setting', from);

    from = h.fake.ephemerals.length;
    acked(await h.driver.slashCommand({ user: dan, channel: 'C0SET2', command: '/settings', text: 'reset' }));
    await ephemeral(dan, 'C0SET2', 'your defaults were reset', from);
    expect(await h.bot.engine.governance.preferences(requester(dan))).toEqual({});
  });
});
