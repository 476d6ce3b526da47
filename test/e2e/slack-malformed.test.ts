/**
 * Malformed and unexpected Slack requests against the real Bolt App inside the real bot, sent
 * from outside as signed HTTP requests: each is answered at once (well before Bolt's own 3 s
 * timeout and its 404), nothing reaches the process-level handlers, and nothing runs or is
 * charged. The real listeners keep what is theirs.
 */
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import type { AckResult } from '../fakes/slack/driver.ts';
import { sentenceFor } from '../../src/errors.ts';
import { COMMAND_NAMES } from '../../commands/index.ts';
import { captureProcessErrors, type ProcessErrors } from '../support/process-errors.ts';
import { startSlackHarness, type SlackHarness } from './slack-harness.ts';

vi.setConfig({ testTimeout: 60_000, hookTimeout: 60_000 });
/** Bolt's receiver answers an unacknowledged request after 3001 ms; an answer "at once" is far below. */
const AT_ONCE_MS = 1500;
const alice = { id: 'UALICE', name: 'alice' };
type Json = Record<string, unknown>;

let h: SlackHarness;
let fatal: ProcessErrors;

beforeAll(async () => {
  fatal = captureProcessErrors();
  h = await startSlackHarness();
});
afterAll(async () => {
  fatal?.stop();
  await h?.close();
});

function atOnce(r: AckResult): AckResult {
  expect(r.status).toBe(200);
  expect(r.ackMs).toBeLessThan(AT_ONCE_MS);
  return r;
}

const postPayload = (payload: Json) => h.driver.post(new URLSearchParams({ payload: JSON.stringify(payload) }).toString());
const jobsStarted = () => h.runbase.runs.size + h.runblob.tasks.size;

/** Opens the /imagine form in `channel` and returns its view id. */
async function openForm(channel: string): Promise<string> {
  const cmd = atOnce(await h.driver.slashCommand({ user: alice, channel, text: '' }));
  const open = await h.fake.waitFor(() => h.fake.callsTo('views.open').find((c) => (c.args as Json).trigger_id === (cmd as { triggerId?: string }).triggerId), 5000, 'views.open');
  return String(((open.response as { view: Json }).view).id);
}

describe('Slack request timestamps', () => {
  test('a correctly signed request stamped more than 5 minutes in the future is refused with 401 and never runs', async () => {
    const before = jobsStarted();
    const future = Math.floor(Date.now() / 1000) + 6 * 60;
    expect((await h.driver.slashCommand({ user: alice, channel: 'CFUTURE', text: 'from the future' }, { timestampSec: future })).status).toBe(401);
    // Within the tolerance (clocks a little apart) it is accepted.
    const nearFuture = Math.floor(Date.now() / 1000) + 60;
    atOnce(await h.driver.slashCommand({ user: alice, channel: 'CNEAR', text: 'help' }, { timestampSec: nearFuture }));
    await h.fake.waitFor(() => h.fake.ephemerals.find((e) => e.channel === 'CNEAR'), 5000, 'help in CNEAR');
    await new Promise((r) => setTimeout(r, 300));
    expect(h.fake.calls.filter((c) => (c.args as Json).channel === 'CFUTURE' || (c.args as Json).channel_id === 'CFUTURE')).toEqual([]);
    expect(jobsStarted()).toBe(before);
    expect(fatal.caught).toEqual([]);
  });
});

describe('Slack request bodies that are not objects', () => {
  test('a signed JSON null, a form payload of null and other non-objects get a 400 at once', async () => {
    const bodies: [string, string][] = [
      ['null', 'application/json'],
      ['payload=null', 'application/x-www-form-urlencoded'],
      ['7', 'application/json'],
      ['"text"', 'application/json'],
      ['payload=true', 'application/x-www-form-urlencoded'],
    ];
    for (const [body, type] of bodies) {
      const r = await h.driver.post(body, {}, type);
      expect({ body, status: r.status }).toEqual({ body, status: 400 });
      expect(r.ackMs).toBeLessThan(AT_ONCE_MS);
    }
    // Unsigned, it is refused as unsigned.
    expect((await h.driver.post('null', { unsigned: true }, 'application/json')).status).toBe(401);
    atOnce(await h.driver.slashCommand({ user: alice, channel: 'CAFTERNULL', text: 'help' }));
    expect(fatal.caught).toEqual([]);
  });
});

describe('Slack form submissions with values of the wrong type', () => {
  test('each is answered with a field error under the input at fault, and nothing runs', async () => {
    const before = jobsStarted();
    const unreadable = sentenceFor('UNREADABLE_REQUEST', {});
    const d = h.driver;
    const cases: { values: Record<string, Record<string, Json>>; field: string }[] = [
      { values: { prompt: { value: d.text('a cat') }, creativity: { value: { type: 'number_input', value: 0.4 } } }, field: 'creativity' },
      { values: { prompt: { value: d.text('a cat') }, model: { value: { type: 'static_select', selected_option: { value: 7 } } } }, field: 'model' },
      { values: { prompt: { value: { type: 'plain_text_input', value: { text: 'a cat' } } } }, field: 'prompt' },
      { values: { prompt: { value: d.text('a cat') }, images: { value: { type: 'file_input', files: 'F123' } } }, field: 'images' },
    ];
    for (const { values, field } of cases) {
      const viewId = await openForm('CFORMTYPES');
      const r = atOnce(await d.submitView({ user: alice, viewId, values }));
      expect(JSON.parse(r.body), field).toEqual({ response_action: 'errors', errors: { [field]: unreadable } });
    }
    await new Promise((r) => setTimeout(r, 300));
    expect(h.fake.messagesIn('CFORMTYPES').filter((m) => m.byBot)).toEqual([]);
    expect(jobsStarted()).toBe(before);
    expect(fatal.caught).toEqual([]);
  });
});

describe('Slack requests no listener takes', () => {
  test('an unknown slash command is answered at once with a private sentence naming the known ones', async () => {
    const r = atOnce(await h.driver.slashCommand({ user: alice, channel: 'CUNKNOWN', text: 'a cat', command: '/paint' }));
    expect(JSON.parse(r.body)).toEqual({ response_type: 'ephemeral', text: sentenceFor('UNKNOWN_COMMAND', { command: 'paint', known: COMMAND_NAMES }) });
  });

  test('unknown buttons, forms, shortcuts, closed forms and untyped bodies get a plain ack at once', async () => {
    const before = jobsStarted();
    const team = { id: h.fake.teamId };
    const user = { id: alice.id, username: 'alice', team_id: h.fake.teamId };
    const view = { id: 'VOTHER', callback_id: 'another_form', type: 'modal', private_metadata: '', state: { values: {} }, blocks: [] };
    const requests: Record<string, Json> = {
      'a button of another app version': {
        type: 'block_actions',
        team,
        user,
        channel: { id: 'CUNKNOWN' },
        container: { type: 'message', channel_id: 'CUNKNOWN', message_ts: '1.000001' },
        actions: [{ type: 'button', action_id: 'legacy:upscale:1', block_id: 'b', action_ts: '1.1' }],
      },
      'a click whose actions are null': { type: 'block_actions', team, user, actions: null },
      'a form of another version': { type: 'view_submission', team, user, view },
      'a form without its view': { type: 'view_submission', team, user, view: null },
      'a closed form': { type: 'view_closed', team, user, view, is_cleared: false },
      'a global shortcut': { type: 'shortcut', team, user, callback_id: 'not_ours', trigger_id: 't' },
      'a message shortcut of another version': { type: 'message_action', team, user, callback_id: 'old_shortcut', trigger_id: 't', channel: { id: 'CUNKNOWN' }, message: { ts: '1.000001' } },
      'a body of no known type': { type: 'mystery', team, user },
    };
    for (const [name, payload] of Object.entries(requests)) {
      const r = await postPayload(payload);
      expect({ name, status: r.status, body: r.body }).toEqual({ name, status: 200, body: '' });
      expect(r.ackMs, name).toBeLessThan(AT_ONCE_MS);
    }
    expect(jobsStarted()).toBe(before);
    expect(fatal.caught).toEqual([]);
  });

  test('the real listeners keep theirs: /imagine with text is acknowledged once, empty, and runs', async () => {
    const r = atOnce(await h.driver.slashCommand({ user: alice, channel: 'CREAL', text: 'a real cat' }));
    expect(r.body).toBe('');
    await h.fake.waitFor(() => h.fake.messagesIn('CREAL').find((m) => JSON.stringify(m.blocks ?? []).includes('imagine:delete:')), 30_000, 'result in CREAL');
    expect(fatal.caught).toEqual([]);
  });
});

describe('Slack Socket Mode: malformed messages and envelopes no listener takes', () => {
  let s: SlackHarness;
  beforeAll(async () => {
    s = await startSlackHarness({ socketMode: true });
    await s.fake.socketConnected();
  });
  afterAll(async () => {
    await s?.close();
  });

  test('a message @slack/socket-mode cannot read is dropped, an unknown command is answered at once, and /imagine still works', async () => {
    for (const raw of ['null', '{"type":"events_api","envelope_id":"e1","payload":null}', '{"type":"events_api","envelope_id":"e2"}', '{"type":"ws_message"}']) s.fake.socketSendRaw(raw);
    const { form } = s.driver.payloads.slashCommand({ user: alice, channel: 'CSOCKBAD', text: 'a cat', command: '/paint' });
    const unknown = await s.fake.socketSend('slash_commands', form);
    expect(unknown.ackMs).toBeLessThan(AT_ONCE_MS);
    expect(unknown.payload).toMatchObject({ text: sentenceFor('UNKNOWN_COMMAND', { command: 'paint', known: COMMAND_NAMES }) });

    const real = s.driver.payloads.slashCommand({ user: alice, channel: 'CSOCKOK', text: 'a socket cat' });
    expect((await s.fake.socketSend('slash_commands', real.form)).ackMs).toBeLessThan(AT_ONCE_MS);
    await s.fake.waitFor(() => s.fake.messagesIn('CSOCKOK').find((m) => JSON.stringify(m.blocks ?? []).includes('imagine:delete:')), 30_000, 'result in CSOCKOK');
    expect(fatal.caught).toEqual([]);
  });
});

/** Every path (objects and arrays, up to `depth` levels) of a JSON value, for one-field mutations. */
function pathsOf(value: unknown, depth: number, prefix: (string | number)[] = []): (string | number)[][] {
  if (depth === 0 || typeof value !== 'object' || value === null) return [];
  const keys: (string | number)[] = Array.isArray(value) ? value.map((_, i) => i) : Object.keys(value);
  return keys.flatMap((k) => [[...prefix, k], ...pathsOf((value as Record<string | number, unknown>)[k], depth - 1, [...prefix, k])]);
}

function mutated<T>(value: T, path: (string | number)[], replacement: unknown): T {
  const copy = structuredClone(value) as Record<string | number, unknown>;
  let at = copy;
  for (const k of path.slice(0, -1)) at = at[k] as Record<string | number, unknown>;
  at[path.at(-1)!] = replacement;
  return copy as T;
}

describe('Slack payloads with one field of the wrong type', () => {
  test('every command, click, form, shortcut and mention with one field replaced is answered at once, and the bot goes on', async () => {
    const replacements: unknown[] = [null, 7, 'x', [], {}, true];
    const [result] = await (async () => {
      atOnce(await h.driver.slashCommand({ user: alice, channel: 'CFUZZ', text: 'a fuzzed cat' }));
      return h.fake.waitFor(() => {
        const found = h.fake.messagesIn('CFUZZ').filter((m) => JSON.stringify(m.blocks ?? []).includes('imagine:delete:'));
        return found.length ? found : undefined;
      }, 30_000, 'result in CFUZZ');
    })();
    const deleteId = JSON.stringify(result!.blocks).match(/imagine:delete:[^"]+/)![0];
    const rerunId = deleteId.replace('delete', 'rerun');
    const viewId = await openForm('CFUZZ');
    const view = h.fake.views.get(viewId)!.view as Json;
    const d = h.driver;
    const click = d.payloads.blockActions({ user: alice, message: result!, actionId: rerunId }).payload;
    const form = {
      type: 'view_submission',
      team: { id: h.fake.teamId },
      user: { id: alice.id, username: 'alice', team_id: h.fake.teamId },
      view: { ...view, state: { values: { prompt: { prompt: d.text('a fuzzed form') }, creativity: { creativity: d.number('0.5') } } } },
    };
    const shortcut = { type: 'message_action', team: { id: h.fake.teamId }, user: { id: alice.id }, callback_id: 'imagine_with_images', trigger_id: 't', channel: { id: 'CFUZZ' }, message: { ts: result!.ts, files: [] } };
    const mention = d.payloads.mention({ message: result! }).body;
    const command = d.payloads.slashCommand({ user: alice, channel: 'CFUZZ', text: 'a fuzzed command' }).form;

    const sent: { what: string; status: number; ms: number }[] = [];
    const send = async (what: string, body: string, type: string) => {
      const r = await d.post(body, {}, type);
      sent.push({ what, status: r.status, ms: r.ackMs });
    };
    for (const [name, payload, depth] of [['click', click, 3], ['form', form, 5], ['shortcut', shortcut, 3]] as const) {
      for (const path of pathsOf(payload, depth)) {
        for (const v of replacements) await send(`${name} ${path.join('.')}=${JSON.stringify(v)}`, new URLSearchParams({ payload: JSON.stringify(mutated(payload, path, v)) }).toString(), 'application/x-www-form-urlencoded');
      }
    }
    for (const path of pathsOf(mention, 2)) {
      for (const v of replacements) await send(`mention ${path.join('.')}=${JSON.stringify(v)}`, JSON.stringify(mutated(mention, path, v)), 'application/json');
    }
    // A form field holds only strings: each field emptied or dropped.
    for (const key of Object.keys(command)) {
      await send(`command ${key}=""`, new URLSearchParams({ ...command, [key]: '' }).toString(), 'application/x-www-form-urlencoded');
      const { [key]: _dropped, ...rest } = command;
      await send(`command without ${key}`, new URLSearchParams(rest).toString(), 'application/x-www-form-urlencoded');
    }
    expect(sent.length).toBeGreaterThan(300);
    expect(sent.filter((s) => ![200, 400].includes(s.status) || s.ms >= AT_ONCE_MS)).toEqual([]);
    expect(fatal.caught).toEqual([]);
    // Still serving: a fresh command runs (another user: the storm may have used alice's quota).
    atOnce(await h.driver.slashCommand({ user: { id: 'UAFTER', name: 'after' }, channel: 'CFUZZEND', text: 'after the storm' }));
    await h.fake.waitFor(() => h.fake.messagesIn('CFUZZEND').find((m) => JSON.stringify(m.blocks ?? []).includes('imagine:delete:')), 30_000, 'result in CFUZZEND');
    expect(fatal.caught).toEqual([]);
  });
});
