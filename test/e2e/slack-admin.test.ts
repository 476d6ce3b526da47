/**
 * /imagine-admin on Slack end to end (issue 10): the real Bolt App in the real bot, driven by
 * signed slash commands, against the fake Slack (users.info admin/owner flags,
 * conversations.info) and the fake providers. Workspace admins and owners, and the users the
 * operator lists in SLACK_ADMIN_USERS, change the workspace's rules; everybody else is refused;
 * the rules then apply to ordinary members' /imagine before anything reaches a provider.
 */
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import type { SlackUser } from '../fakes/slack/driver.ts';
import type { FakeEphemeral } from '../fakes/slack/fake-slack.ts';
import { acked, startSlackHarness, type SlackHarness } from './slack-harness.ts';
import type { Requester } from '../../src/engine/request.ts';

const WAIT_MS = 60_000;
vi.setConfig({ testTimeout: 180_000, hookTimeout: 120_000 });

const ada = { id: 'U0ADA', name: 'ada' }; // workspace admin
const olga = { id: 'U0OLGA', name: 'olga' }; // owner (is_owner without is_admin)
const oscar = { id: 'U0OSCAR', name: 'oscar' }; // listed by the operator
const carl = { id: 'U0CARL', name: 'carl' }; // ordinary member
const bob = { id: 'U0BOB', name: 'bob' }; // ordinary member

let h: SlackHarness;
let scope: `slack:${string}`;

beforeAll(async () => {
  h = await startSlackHarness({
    fakeSlack: {
      users: [
        { id: ada.id, name: ada.name, is_admin: true },
        { id: olga.id, name: olga.name, is_owner: true },
        { id: oscar.id, name: oscar.name },
        { id: carl.id, name: carl.name },
        { id: bob.id, name: bob.name },
      ],
      unseededUsers: 'not_found',
      channels: [
        { id: 'C0ART', name: 'art' },
        { id: 'C0GEN', name: 'general' },
        { id: 'C0LOG', name: 'bot-log' },
      ],
    },
    env: { SLACK_ADMIN_USERS: oscar.id, QUOTA_DAILY_UNITS: '20' },
  });
  scope = `slack:${h.fake.teamId}`;
});
afterAll(async () => {
  await h?.close();
});


/** Runs a slash command and waits for the private answer that contains `includes`. */
async function slash(user: SlackUser, channel: string, command: string, text: string, includes: string): Promise<FakeEphemeral> {
  const before = h.fake.ephemerals.length;
  acked(await h.driver.slashCommand({ user, channel, command, text }));
  return h.fake.waitFor(
    () => h.fake.ephemerals.slice(before).find((e) => e.user === user.id && e.channel === channel && e.text.includes(includes)),
    WAIT_MS,
    `${command} ${text}: an ephemeral with "${includes}" (got ${JSON.stringify(h.fake.ephemerals.slice(before).map((e) => e.text))})`,
  );
}
const admin = (user: SlackUser, text: string, includes: string, channel = 'C0GEN') => slash(user, channel, '/imagine-admin', text, includes);
const providerRequests = () => h.runbase.requests.length + h.runblob.requests.length;
const requester = (u: SlackUser): Requester => ({ platform: 'slack', userId: u.id, scope: h.fake.teamId, channelId: 'C0ART' });

/** /imagine as `user` in `channel`: waits for its result message, or for a refusal containing `refusal`. */
async function imagine(user: SlackUser, channel: string, prompt: string, refusal?: string): Promise<void> {
  if (refusal) {
    await slash(user, channel, '/imagine', prompt, refusal);
    return;
  }
  const before = h.fake.messagesIn(channel).length;
  acked(await h.driver.slashCommand({ user, channel, text: prompt }));
  await h.fake.waitFor(
    () => h.fake.messagesIn(channel).slice(before).find((m) => m.byBot && JSON.stringify(m.blocks ?? []).includes('imagine:delete:')),
    WAIT_MS,
    `a result in ${channel}`,
  );
}

describe('who may use /imagine-admin', () => {
  test('an ordinary member is refused privately, naming who can; nothing changes', async () => {
    const e = await admin(carl, 'channels allow <#C0ART|art>', 'Only workspace admins and owners');
    expect(e.text).toContain("can change the bot's settings here");
    expect((await h.bot.engine.governance.settings(scope)).channels.mode).toBe('all');
    expect(await h.bot.engine.governance.audit(scope, 10)).toEqual([]);
  });

  test('a workspace owner (is_owner), an operator-listed user (SLACK_ADMIN_USERS) and an admin in a DM are accepted', async () => {
    await admin(olga, 'daily 15', 'Done: members now get 15 units');
    await admin(oscar, 'daily 12', 'Done: members now get 12 units');
    expect((await h.bot.engine.governance.settings(scope)).dailyUnits).toBe(12);
    // A DM is still in the workspace: the workspace is the scope.
    await admin(ada, 'show', "image bot settings", `D${ada.id}`);
    await admin(ada, 'daily default', 'Done: members now get 20 units', `D${ada.id}`);
  });
});

describe('an admin governs the workspace', () => {
  test('a channel allow-list: elsewhere /imagine is refused privately, nothing reaches a provider; inside it works', async () => {
    await admin(ada, 'channels allow <#C0NOPE|nope>', 'There is no channel');
    await admin(ada, 'channels allow <#C0ART|art>', 'Done: /imagine now works only in <#C0ART>');
    const sent = providerRequests();
    await imagine(bob, 'C0GEN', 'a lighthouse', "don't allow /imagine in this channel");
    expect(h.fake.messagesIn('C0GEN').filter((m) => m.byBot)).toHaveLength(0);
    expect(providerRequests()).toBe(sent);
    await imagine(bob, 'C0ART', 'a lighthouse');
    await admin(ada, 'channels all', 'Done: /imagine now works in every channel');
  });

  test('a filter word: a prompt with it, in capitals and accented, is refused and never reaches a provider', async () => {
    await admin(ada, 'filter add dragon', 'Done: added "dragon" to the prompt filter');
    const sent = providerRequests();
    const e = await slash(bob, 'C0ART', '/imagine', 'a DRÁGON over the sea', "A rule set by this server's admins refused this prompt");
    expect(e.text).not.toContain('dragon');
    expect(providerRequests()).toBe(sent);
    // A mention is in the workspace too: the same rule applies to it.
    const before = h.fake.ephemerals.length;
    acked(await h.driver.mentionAs({ user: bob, channel: 'C0ART', text: `<@${h.fake.botUserId}> a dragon at dawn` }));
    await h.fake.waitFor(() => h.fake.ephemerals.slice(before).find((e) => e.user === bob.id && e.text.includes('refused this prompt')), WAIT_MS, 'the mention refused');
    expect(providerRequests()).toBe(sent);
    await admin(ada, 'filter list', 'dragon');
  });

  test('a per-user override, a block, a grant and a reset', async () => {
    await admin(ada, 'user <@U0NOBODY|ghost> 5', 'There is no member');
    await admin(ada, `user <@${bob.id}|bob> 3`, `Done: <@${bob.id}> now gets 3 units per day`);
    expect((await h.bot.engine.governance.allowance(requester(bob))).allowance).toBe(3);

    await admin(ada, `grant <@${bob.id}|bob> 4`, `Done: gave <@${bob.id}> 4 extra units for today`);
    const view = await h.bot.engine.governance.allowance(requester(bob));
    expect(view.granted).toBe(4);
    expect(view.allowance).toBe(7);
    const quota = await slash(bob, 'C0ART', '/quota', '', 'of');
    expect(quota.text).toContain('7');

    await admin(ada, `block <@${carl.id}|carl>`, `Done: <@${carl.id}> is blocked`);
    const sent = providerRequests();
    await imagine(carl, 'C0ART', 'a cat', "have blocked you from making images here");
    expect(providerRequests()).toBe(sent);
    await admin(ada, `unblock <@${carl.id}>`, `may make images here again`);
    await imagine(carl, 'C0ART', 'a cat');

    await admin(ada, `reset <@${carl.id}>`, `Done: <@${carl.id}>'s day starts over`);
    expect((await h.bot.engine.quota(requester(carl))).used).toBe(0);
  });

  test('usage and the audit log: who made what, and every change with who did it', async () => {
    // The per-member rows come from the usage ledger (gov-ledger); here: the view and its total.
    const usage = await admin(ada, 'usage', 'Usage today');
    expect(usage.text).toContain('Total:');
    await admin(ada, 'usage month', 'Usage this month');
    const audit = await admin(ada, 'audit', 'newest first');
    expect(audit.text).toContain(`<@${ada.id}>`);
    expect(audit.text).toContain(`<@${oscar.id}>`);
    expect(audit.text).toContain('filter refusal');
    // The refused prompt's rule is never echoed.
    expect(audit.text).not.toMatch(/drágon/i);
  });

  test('a log channel and the most images per request, through the same grammar', async () => {
    await admin(ada, 'log-channel <#C0LOG|bot-log>', 'now also posted in <#C0LOG>');
    expect((await h.bot.engine.governance.settings(scope)).logChannel).toBe('C0LOG');
    await admin(ada, 'max-count 2', 'at most 2 images');
    const sent = providerRequests();
    await imagine(bob, 'C0ART', 'a cat --n 3', 'at most 2 images per request');
    expect(providerRequests()).toBe(sent);
  });
});
