/**
 * The Slack listeners called directly with small fakes (listener-fakes.ts): what the user sees
 * for each, that ack() always comes first, and that every refusal is told privately by the one
 * catch after the ack. End to end through Bolt: test/e2e/slack.test.ts.
 */
import { describe, expect, test } from 'vitest';
import { encodeAction } from '../../../../commands/custom-id.ts';
import { QuotaExceededError } from '../../../../src/engine/errors.ts';
import { MODEL_CATALOG } from '../../../../src/engine/models.ts';
import { messageShortcut } from '../../../../src/platforms/slack/listeners/shortcut.ts';
import type { App } from '@slack/bolt';
import { COMMANDS } from '../../../../commands/index.ts';
import { imagineCommand, quotaCommand, register } from '../../../../src/platforms/slack/listeners/commands.ts';
import { resultAction } from '../../../../src/platforms/slack/listeners/actions.ts';
import { appMention } from '../../../../src/platforms/slack/listeners/mention.ts';
import { modalSubmission } from '../../../../src/platforms/slack/listeners/modal.ts';
import { encodeMetadata } from '../../../../src/platforms/slack/modal.ts';
import { sentenceFor } from '../../../../src/errors.ts';
import { makeJob } from './fixtures.ts';
import { command, fakeSlack } from './listener-fakes.ts';

type Json = Record<string, unknown>;
const GENERIC = sentenceFor('INTERNAL', {});
const MENTION_USAGE = sentenceFor('MENTION_WITHOUT_PROMPT', {});
const MODAL_EXPIRED = sentenceFor('FORM_EXPIRED', {});
const MODAL_NOT_OPENED = sentenceFor('FORM_OPEN_FAILED', {});
const NOT_OWNER_DELETE = (owner: string) => sentenceFor('NOT_OWNER', { owner: `<@${owner}>`, moderatorsToo: false });
const NO_IMAGES_IN_MESSAGE = sentenceFor('NO_IMAGES_IN_MESSAGE', {});
const NO_TRIGGER = sentenceFor('FORM_UNAVAILABLE', {});
const UNKNOWN_BUTTON = sentenceFor('UNKNOWN_CONTROL', {});
const UNREADABLE_REQUEST = sentenceFor('UNREADABLE_REQUEST', {});

describe('/imagine', () => {
  test('with a prompt: acked before anything else, then one job and its placeholder in the channel', async () => {
    const s = fakeSlack();
    await imagineCommand(s.deps)({ ack: s.ack, body: command('a red fox --ar 16:9 --n 2') });
    expect(s.events).toEqual(['ack']);
    expect(s.deferred.map((d) => d.what)).toEqual(['/imagine']);
    await s.settle();
    expect(s.events).toEqual(['ack', 'submit', 'placeholder']);
    expect(s.submitted[0]).toMatchObject({ prompt: 'a red fox', ratio: '16:9', count: 2, requester: { platform: 'slack', userId: 'UALICE', name: 'alice' } });
    expect(s.submitted[0]!.location).toMatchObject({ channel: 'C1', user: 'UALICE', team: 'T1' });
    expect(s.placeholders[0]!.where).toMatchObject({ channel: 'C1', user: 'UALICE' });
    expect(s.ephemerals()).toEqual([]);
  });

  test('alone: opens the modal at once (urgent), with where the result goes', async () => {
    const s = fakeSlack();
    await imagineCommand(s.deps)({ ack: s.ack, body: command('', { thread_ts: '5.5' }) });
    expect(s.deferred[0]!.urgent).toBe(true);
    await s.settle();
    expect(s.events).toEqual(['ack', 'views.open']);
    const { args } = s.callsTo('views.open')[0]!;
    expect(args.trigger_id).toBe('trig-1');
    const view = args.view as Json;
    expect(view.callback_id).toBe('imagine_modal');
    expect(JSON.parse(String(view.private_metadata))).toEqual({ c: 'C1', t: '5.5' });
  });

  test('alone without a trigger_id, or when Slack will not open the form: the sentence, privately', async () => {
    const s = fakeSlack();
    await imagineCommand(s.deps)({ ack: s.ack, body: command('', { trigger_id: undefined }) });
    await s.settle();
    expect(s.ephemerals()).toEqual([NO_TRIGGER]);

    const t = fakeSlack({ failing: { 'views.open': new Error('expired_trigger_id') } });
    await imagineCommand(t.deps)({ ack: t.ack, body: command('') });
    await t.settle();
    expect(t.ephemerals()).toEqual([MODAL_NOT_OPENED]);
    expect(t.callsTo('chat.postEphemeral')[0]!.args).toMatchObject({ channel: 'C1', user: 'UALICE' });
  });

  test('help and quota are answered privately; nothing is submitted', async () => {
    const s = fakeSlack();
    await imagineCommand(s.deps)({ ack: s.ack, body: command('help') });
    await imagineCommand(s.deps)({ ack: s.ack, body: command('QUOTA') });
    await quotaCommand(s.deps)({ ack: s.ack, body: command('', { command: '/quota' }) });
    await s.settle();
    const [help, quota, quota2] = s.ephemerals();
    expect(help).toContain('*How to use /imagine*');
    expect(help).toContain('--ar');
    expect(quota).toContain('15');
    expect(quota2).toBe(quota);
    expect(s.submitted).toEqual([]);
  });

  test('a bad flag or an engine refusal: its sentence, privately, logged with its code, user and what', async () => {
    const s = fakeSlack();
    await imagineCommand(s.deps)({ ack: s.ack, body: command('a cat --n 9') });
    await s.settle();
    expect(s.ephemerals()[0]).toContain('--n 9 is not a number of images');
    expect(s.submitted).toEqual([]);

    const refusal = new QuotaExceededError(4, 1, Date.UTC(2026, 0, 2));
    const t = fakeSlack({ submit: async () => Promise.reject(refusal) });
    await imagineCommand(t.deps)({ ack: t.ack, body: command('a cat') });
    await t.settle();
    expect(t.ephemerals()).toEqual([refusal.userMessage]);
    expect(t.placeholders).toEqual([]);
    expect(t.logs.find((l) => l.msg === 'slack request refused')).toMatchObject({ code: 'QUOTA_EXCEEDED', user: 'UALICE', what: '/imagine' });
  });

  test('an unexpected failure: the generic sentence, logged as an error', async () => {
    const s = fakeSlack({ submit: async () => Promise.reject(new TypeError('boom')) });
    await imagineCommand(s.deps)({ ack: s.ack, body: command('a cat') });
    await s.settle();
    expect(s.ephemerals()).toEqual([GENERIC]);
    expect(s.logs.find((l) => l.msg === 'slack request failed')).toMatchObject({ level: 50, code: 'INTERNAL', what: '/imagine' });
  });

  test('a payload it cannot read is acked, then explained to whoever it names', async () => {
    const s = fakeSlack();
    await imagineCommand(s.deps)({ ack: s.ack, body: { user_id: 'UALICE', channel_id: 'C1', text: 'a cat' } });
    await s.settle();
    expect(s.events[0]).toBe('ack');
    expect(s.ephemerals()).toEqual([UNREADABLE_REQUEST]);
    expect(s.submitted).toEqual([]);
  });
});

describe('the modal submission', () => {
  const submission = (values: Json, metadata = encodeMetadata({ channel: 'C9', threadTs: '7.7', refs: [] })) => ({
    type: 'view_submission',
    user: { id: 'UALICE', username: 'alice' },
    team: { id: 'T1' },
    view: {
      private_metadata: metadata,
      state: { values: Object.fromEntries(Object.entries(values).map(([k, v]) => [k, { [k]: v }])) },
      blocks: ['prompt', 'model', 'ratio', 'resolution', 'count', 'creativity', 'images'].map((block_id) => ({ type: 'input', block_id })),
    },
  });

  test('a good one: a bare ack, then the job with the fields as options, in the thread it came from', async () => {
    const s = fakeSlack();
    const body = submission({ prompt: { value: 'a cat' }, model: { selected_option: { value: 'runblob-2' } }, ratio: { selected_option: { value: '3:2' } }, creativity: { value: '0.4' } });
    await modalSubmission(s.deps)({ ack: s.ack, body });
    expect(s.acks).toEqual([undefined]);
    await s.settle();
    expect(s.events).toEqual(['ack', 'submit', 'placeholder']);
    expect(s.submitted[0]).toMatchObject({ prompt: 'a cat', model: 'runblob-2', ratio: '3:2', creativity: 0.4 });
    expect(s.placeholders[0]!.where).toMatchObject({ channel: 'C9', threadTs: '7.7', user: 'UALICE', team: 'T1' });
  });

  test('what the user can fix goes back under its field in the ack; nothing is started', async () => {
    const s = fakeSlack();
    await modalSubmission(s.deps)({ ack: s.ack, body: submission({ prompt: { value: 'a cat --n 9' } }) });
    await modalSubmission(s.deps)({ ack: s.ack, body: submission({ prompt: { value: 'a cat' } }, 'not json') });
    await modalSubmission(s.deps)({ ack: s.ack, body: { type: 'view_submission', view: {} } });
    expect(s.acks).toEqual([
      { response_action: 'errors', errors: { count: expect.stringContaining('--n 9') as unknown } },
      { response_action: 'errors', errors: { prompt: MODAL_EXPIRED } },
      { response_action: 'errors', errors: { prompt: UNREADABLE_REQUEST } },
    ]);
    expect(s.deferred).toEqual([]);
  });
});

describe('the message shortcut', () => {
  const shortcut = (files: Json[]) => ({
    type: 'message_action',
    callback_id: 'imagine_with_images',
    trigger_id: 'trig-2',
    user: { id: 'UALICE' },
    channel: { id: 'C2' },
    message: { ts: '3.3', files },
  });

  test('opens the modal with the images only (known by media type, file type or name), in the message thread', async () => {
    const s = fakeSlack();
    const files = [
      { id: 'F1', name: 'cat.png', mimetype: 'image/png', url_private: 'https://files.slack.com/F1' },
      { id: 'F2', name: 'notes.txt', mimetype: 'text/plain' },
      { id: 'F3', name: 'dog', filetype: 'jpg' },
      { id: 'F4', name: 'bird.WEBP' },
      { id: 'F5', name: 'anim.gif', mimetype: 'image/gif' },
    ];
    await messageShortcut(s.deps)({ ack: s.ack, body: shortcut(files) });
    expect(s.deferred[0]!.urgent).toBe(true);
    await s.settle();
    expect(s.events).toEqual(['ack', 'views.open']);
    const meta = JSON.parse(String((s.callsTo('views.open')[0]!.args.view as Json).private_metadata)) as { c: string; t: string; r: { i: string }[] };
    expect(meta.c).toBe('C2');
    expect(meta.t).toBe('3.3');
    expect(meta.r.map((r) => r.i)).toEqual(['F1', 'F3', 'F4']);
  });

  test('on a message without images: the sentence, privately, in its thread', async () => {
    const s = fakeSlack();
    await messageShortcut(s.deps)({ ack: s.ack, body: shortcut([{ id: 'F2', name: 'notes.txt', mimetype: 'text/plain' }]) });
    await s.settle();
    expect(s.ephemerals()).toEqual([NO_IMAGES_IN_MESSAGE]);
    expect(s.callsTo('chat.postEphemeral')[0]!.args).toMatchObject({ channel: 'C2', thread_ts: '3.3' });
    expect(s.callsTo('views.open')).toEqual([]);
  });
});

describe('the result buttons', () => {
  const parent = makeJob({ id: 'jobparent0001', request: { requester: { platform: 'slack', userId: 'UALICE' }, location: { channel: 'C1', user: 'UALICE', fileIds: ['FR1'] } } });
  const click = (actionId: string, user = 'UALICE') => ({
    type: 'block_actions',
    user: { id: user },
    channel: { id: 'C1' },
    message: { ts: '8.8' },
    actions: [{ action_id: actionId, value: 'x' }],
  });

  test('Rerun: acked first, then a new job from the clicked one in its thread', async () => {
    const s = fakeSlack({ jobs: { [parent.id]: parent } });
    await resultAction(s.deps)({ ack: s.ack, body: click(encodeAction({ action: 'rerun', jobId: parent.id })) });
    await s.settle();
    expect(s.events).toEqual(['ack', 'submit', 'placeholder']);
    expect(s.submitted[0]).toMatchObject({ prompt: parent.request.prompt, ratio: parent.request.ratio });
    expect(s.placeholders[0]!.where).toMatchObject({ threadTs: '8.8' });
  });

  test('Delete by the requester removes the message and its files; by anyone else it is refused privately', async () => {
    const s = fakeSlack({ jobs: { [parent.id]: parent } });
    const del = encodeAction({ action: 'delete', jobId: parent.id });
    await resultAction(s.deps)({ ack: s.ack, body: click(del, 'UBOB') });
    await s.settle();
    expect(s.ephemerals()).toEqual([NOT_OWNER_DELETE('UALICE')]);
    expect(s.callsTo('chat.delete')).toEqual([]);
    await resultAction(s.deps)({ ack: s.ack, body: click(del) });
    await s.settle();
    expect(s.callsTo('files.delete').map((c) => c.args.file)).toEqual(['FR1']);
    expect(s.callsTo('chat.delete')[0]!.args).toEqual({ channel: 'C1', ts: '8.8' });
  });

  test('a button it does not know, or one whose job is gone: the sentence, privately', async () => {
    const s = fakeSlack();
    await resultAction(s.deps)({ ack: s.ack, body: click('imagine:explode:whatever') });
    await resultAction(s.deps)({ ack: s.ack, body: click(encodeAction({ action: 'rerun', jobId: 'jobgone000001' })) });
    await s.settle();
    expect(s.ephemerals()).toEqual([UNKNOWN_BUTTON, sentenceFor('JOB_NOT_FOUND', {})]);
  });
});

describe('mentions', () => {
  const mention = (text: string, ts = '4.4') => ({ type: 'app_mention', user: 'UKIM', text, channel: 'C3', ts });
  const context = { botUserId: 'UBOT' };

  test('the prompt without the bot’s mention becomes a job answered in the message thread; a redelivery is ignored', async () => {
    const s = fakeSlack({ models: MODEL_CATALOG });
    await appMention(s.deps)({ event: mention('<@UBOT> a fox with <@UKIM> --ar 3:2'), context });
    await appMention(s.deps)({ event: mention('<@UBOT> a fox with <@UKIM> --ar 3:2'), context: { ...context, retryNum: 1 } });
    await s.settle();
    expect(s.submitted).toHaveLength(1);
    expect(s.submitted[0]).toMatchObject({ prompt: 'a fox with <@UKIM>', ratio: '3:2', requester: { platform: 'slack', userId: 'UKIM' } });
    expect(s.placeholders[0]!.where).toMatchObject({ channel: 'C3', threadTs: '4.4' });
  });

  test('a mention with no prompt: how to use it, privately', async () => {
    const s = fakeSlack();
    await appMention(s.deps)({ event: mention('<@UBOT>  '), context });
    await s.settle();
    expect(s.ephemerals()).toEqual([MENTION_USAGE]);
  });
});

describe('registration', () => {
  test('every command in the registry gets a slash-command listener, and nothing else does', () => {
    const s = fakeSlack();
    const patterns: RegExp[] = [];
    register({ command: (p: RegExp) => void patterns.push(p) } as unknown as App, s.deps);
    for (const c of COMMANDS) expect(patterns.filter((p) => p.test(`/${c.name}`)), `/${c.name}`).toHaveLength(1);
    expect(patterns).toHaveLength(COMMANDS.length);
    // A longer name is not taken by a shorter command's listener (/imagine vs /imagine-admin).
    expect(patterns.filter((p) => p.test('/imagine-admin'))).toHaveLength(1);
    expect(patterns.some((p) => p.test('/imagine-admins'))).toBe(false);
  });
});
