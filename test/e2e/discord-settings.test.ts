/**
 * /settings on Discord end to end: a member's own defaults are used by /imagine whenever an
 * option is not given (an explicit option wins), private by default makes the answer private,
 * the server's defaults fill what nobody chose, and reset forgets them. Real discord.js, engine
 * and store against the fake Discord and providers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Permission, type FakeUser } from '../fakes/discord/index.ts';
import { UNREAD_PREFERENCES, unreadPreferencesNotice } from '../../src/engine/governance/api.ts';
import { USERS, expectDiscordInvariants, startDiscordHarness, type DiscordHarness } from './discord-harness.ts';

let h: DiscordHarness;
beforeAll(async () => {
  h = await startDiscordHarness();
  const mods = h.discord.createRole({ name: 'Mods', permissions: Permission.ManageGuild });
  h.discord.setMemberRoles(USERS.mod.id, [mods.id]);
});
afterAll(async () => {
  await h?.close();
});

const TYPES: Record<string, number> = { model: 3, ratio: 3, resolution: 3, count: 4, private: 5, reset: 5, action: 3 };

async function command(name: string, values: Record<string, string | number | boolean>, user: FakeUser): Promise<string> {
  const options = Object.entries(values).map(([n, value]) => ({ name: n, type: TYPES[n] ?? 3, value }));
  const i = await h.discord.sendCommand({ name, user, options });
  return (await h.privateAnswer(i)).content;
}

describe('/settings on Discord', () => {
  it('shows, sets and keeps a member\'s defaults, privately', async () => {
    expect(await command('settings', {}, USERS.alice)).toContain('Ratio: (not set)');
    const saved = await command('settings', { ratio: '16:9', resolution: '2K', count: 2 }, USERS.alice);
    expect(saved).toContain('Saved: your defaults for /imagine');
    expect(saved).toContain('Ratio: 16:9');
    // Setting one more keeps the others.
    const more = await command('settings', { private: true }, USERS.alice);
    expect(more).toContain('Ratio: 16:9');
    expect(more).toContain('Private by default: yes');
    expect(await command('settings', { ratio: '7:3' }, USERS.alice)).toMatch(/^⚠️ ratio 7:3 is not a ratio this bot knows/);
  });

  it('/imagine uses them when an option is not given; an explicit option wins', async () => {
    const i = await h.imagine('a harbour at dawn', { user: USERS.alice });
    const m = await h.result(i);
    expect(m.attachments).toHaveLength(2);
    expect(m.content).toContain('16:9');
    expect(m.content).toContain('(2K)');
    expect(m.flags & 64).toBe(64);

    const j = await h.imagine('a harbour at dusk', { user: USERS.alice, values: { ratio: '1:1', count: 1, private: false } });
    const n = await h.result(j);
    expect(n.attachments).toHaveLength(1);
    expect(n.content).toContain(' 1:1 ');
    expect(n.flags & 64).toBe(0);
  });

  it("the server's defaults fill what neither the member nor their /settings chose", async () => {
    expect(await command('imagine-admin', { action: 'default ratio 4:3' }, USERS.mod)).toContain('ratio 4:3');
    const bobs = await h.result(await h.imagine('a meadow', { user: USERS.bob }));
    expect(bobs.content).toContain(' 4:3 ');
    // Alice's own 16:9 still wins over the server's default.
    const alices = await h.result(await h.imagine('a meadow', { user: USERS.alice, values: { private: false } }));
    expect(alices.content).toContain(' 16:9 ');
  });

  it('/settings that cannot be read in time: the answer is private, the job goes ahead, and a private follow-up says why', async () => {
    // The store stops answering for /settings (the read budget runs out or the read fails).
    const governance = h.bot.engine.governance;
    const real = { now: governance.preferencesNow, later: governance.preferences };
    governance.preferencesNow = () => undefined;
    governance.preferences = async () => UNREAD_PREFERENCES;
    try {
      for (const [values, ephemeral] of [
        [{}, true],
        [{ private: false }, false],
      ] as const) {
        const i = await h.imagine('a lighthouse in fog', { user: USERS.bob, values });
        const m = await h.result(i);
        expect(m.attachments).toHaveLength(1);
        expect((m.flags & 64) !== 0).toBe(ephemeral);
        // The notice is a follow-up of its own, ephemeral, not the result (the deferred reply).
        const notice = await h.discord.waitFor(
          () => [...h.discord.messages.values()].find((n) => n.interactionId === i.id && n.id !== m.id && !n.deleted),
          8_000,
          'the notice',
        );
        expect(notice.content).toBe(unreadPreferencesNotice({ private: ephemeral }));
        expect(notice.flags & 64).toBe(64);
      }
    } finally {
      governance.preferencesNow = real.now;
      governance.preferences = real.later;
    }
  });

  it('reset forgets them', async () => {
    const reset = await command('settings', { reset: true }, USERS.alice);
    expect(reset).toContain('Saved: your defaults were reset');
    expect(reset).toContain('Ratio: (not set)');
    const m = await h.result(await h.imagine('a meadow again', { user: USERS.alice }));
    expect(m.content).toContain(' 4:3 ');
    expect(m.flags & 64).toBe(0);
    expectDiscordInvariants(h.discord);
  });
});
