/**
 * Everything that can go wrong, as a Discord user sees it: every provider failure kind, a 402,
 * an outage, invalid options and attachments, quota exhaustion (command and click), Discord
 * 429s. Each ends with a specific sentence in the placeholder (or a private answer for clicks);
 * never "interaction failed", never a request Discord would refuse.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TASK_FAILURE_SENTENCES } from '../../src/providers/errors.ts';
import { componentsOf, customIdOf, expectDiscordInvariants, startDiscordHarness, type DiscordHarness } from './discord-harness.ts';

let h: DiscordHarness;
beforeAll(async () => {
  h = await startDiscordHarness({ env: { QUOTA_DAILY_UNITS: '6' } });
});
afterAll(async () => {
  await h?.close();
});

let userSeq = 0;
/** A fresh user per scenario, so quotas do not interfere. */
const freshUser = () => {
  userSeq += 1;
  return { id: `20000000000000${String(userSeq).padStart(4, '0')}`, username: `user${userSeq}` };
};

describe('Discord failures', () => {
  for (const code of Object.keys(TASK_FAILURE_SENTENCES)) {
    it(`explains a task failed with ${code}, refunds it and offers Try again`, async () => {
      const user = freshUser();
      const m = await h.result(await h.imagine(`a test image [fail:${code}]`, { user, values: { model: 'runblob-2' } }));
      expect(m.content).toContain("Couldn't make your image");
      expect(m.content).toContain(TASK_FAILURE_SENTENCES[code]!);
      expect(m.content).toContain('You were not charged');
      expect(m.attachments).toHaveLength(0);
      expect(componentsOf(m).map((c) => c.label)).toEqual(['Try again', 'Remix', 'Delete']);
      expect((await h.bot.engine.quota({ platform: 'discord', userId: user.id })).used).toBe(0);
    });
  }

  it('tells the user the operator must top up credits when the provider answers 402', async () => {
    h.runbase!.balanceMicros = 0;
    try {
      const m = await h.result(await h.imagine('a costly image', { user: freshUser(), values: { model: 'runbase-2' } }));
      expect(m.content).toContain("operator must top up credits");
    } finally {
      h.runbase!.balanceMicros = Number.MAX_SAFE_INTEGER;
    }
  });

  it('explains a provider outage', async () => {
    h.runblob!.injectFault({ match: 'create', status: 503, times: 10, body: { detail: 'down' } });
    try {
      const m = await h.result(await h.imagine('during an outage', { user: freshUser(), values: { model: 'runblob-pro' } }));
      expect(m.content).toMatch(/image service (had an internal error|could not be reached)/);
    } finally {
      h.runblob!.clearFaults();
    }
  });

  it('shows what is wrong with an option and with an attachment, privately: the channel sees nothing', async () => {
    const requests = () => h.runbase!.counts.create + h.runblob!.counts.create;
    const before = requests();
    const flag = await h.imagine('a dog --ar 7:3', { user: freshUser() });
    const badFlag = await h.privateAnswer(flag);
    expect(badFlag.content).toMatch(/^⚠️ .*7:3/);
    // Refused before any answer: the only response is the ephemeral reply, no public placeholder ever existed.
    expect([...h.discord.messages.values()].filter((m) => m.interactionId === flag.id)).toHaveLength(1);
    const notImage = await h.privateAnswer(
      await h.imagine('a dog', { user: freshUser(), attachments: { image2: { filename: 'notes.txt', data: Buffer.from('hello, not an image'), contentType: 'text/plain' } } }),
    );
    expect(notImage.content).toMatch(/^⚠️ Reference image 1 \(notes\.txt\) is not a JPEG, PNG or WEBP image/);
    const tooBig = await h.privateAnswer(await h.imagine('a dog --res 4K', { user: freshUser(), values: { model: 'runblob-standard' } }));
    expect(tooBig.content).toMatch(/^⚠️ .*4K/);
    expect(requests()).toBe(before);
    expectDiscordInvariants(h.discord);
  });

  it('refuses a request over the daily quota with the reset time, and a click by a user out of quota privately', async () => {
    const user = freshUser();
    const first = await h.result(await h.imagine('quota one', { user, values: { count: 4 } }));
    expect(first.attachments).toHaveLength(4);
    const refused = await h.privateAnswer(await h.imagine('quota two', { user, values: { count: 4 } }));
    expect(refused.content).toMatch(/^⚠️ You're out of image quota for today: this needs 4 units and you have 2 units left\. It resets at \d\d:\d\d UTC/);

    const click = await h.discord.clickComponent({ message: first, customId: customIdOf(first, { label: 'U1' }), user });
    const answer = await h.discord.waitFor(
      () => [...h.discord.messages.values()].find((m) => m.interactionId === click.id && (m.flags & 64) !== 0 && m.content !== ''),
      5_000,
      'the private quota answer',
    );
    expect(answer.content).toContain("You're out of image quota");
    expect(h.discord.originalMessage(click)?.deleted).toBe(true);
    expectDiscordInvariants(h.discord);
  });

  it('waits out Discord 429s on edits and uploads and still delivers', async () => {
    h.discord.injectRateLimit({ method: 'PATCH', path: /\/messages\/@original$/, times: 3, retryAfterS: 0.15 });
    const m = await h.result(await h.imagine('through rate limits', { user: freshUser() }));
    expect(m.attachments).toHaveLength(1);
    expect(h.discord.requests.filter((r) => r.rateLimited === 'injected')).toHaveLength(3);
    expectDiscordInvariants(h.discord);
  });

  it('images Discord keeps refusing: after the last retry the placeholder says they are made and will be posted at the next start', async () => {
    const user = freshUser();
    // The next three uploads through an interaction webhook are refused: the first delivery and the harness's two retries.
    const rule = { method: 'PATCH', path: /\/webhooks\/\d+\/[^/]+\/messages\/@original$/, times: 3, withFiles: true };
    h.discord.injectError(rule);
    const i = await h.imagine('an unpostable heron', { user });
    const m = await h.discord.waitFor(() => {
      const msg = h.discord.originalMessage(i);
      return msg?.content.startsWith('⚠️') ? msg : undefined;
    }, 10_000, 'the delivery failure in the placeholder');
    expect(m.content).toContain('Your image is ready for "an unpostable heron", but Discord would not take it (Missing Permissions)');
    expect(m.content).toContain('next time the bot starts');
    expect(m.attachments).toEqual([]);
    expectDiscordInvariants(h.discord, [50013]);
  });
});
