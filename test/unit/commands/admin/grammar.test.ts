/** /imagine-admin's grammar: text → action or view, mentions of both platforms, and the sentences for mistakes. */
import { describe, expect, it } from 'vitest';
import { adminHelpText, mentionId, parseAdminText, VERBS } from '../../../../commands/admin/grammar.ts';
import { MODEL_CATALOG } from '../../../../src/engine/models.ts';
import { BotError, errorCode } from '../../../../src/errors.ts';

const models = MODEL_CATALOG;
const parse = (text: string) => parseAdminText(text, models);

function refusal(text: string): { code: string; message: string } {
  try {
    parse(text);
  } catch (err) {
    return { code: errorCode(err), message: err instanceof BotError ? err.userMessage : String(err) };
  }
  throw new Error(`"${text}" was accepted`);
}

describe('parseAdminText', () => {
  it('reads views: empty and show, help, usage today/month, audit, filter list', () => {
    expect(parse('')).toEqual({ view: 'show' });
    expect(parse('  SHOW ')).toEqual({ view: 'show' });
    expect(parse('help')).toEqual({ view: 'help' });
    expect(parse('usage')).toEqual({ view: 'usage', period: 'day' });
    expect(parse('usage today')).toEqual({ view: 'usage', period: 'day' });
    expect(parse('usage Month')).toEqual({ view: 'usage', period: 'month' });
    expect(parse('audit')).toEqual({ view: 'audit' });
    expect(parse('filter list')).toEqual({ view: 'filter-list' });
  });

  it('reads Discord and Slack mentions, and bare ids, for the kind each place expects', () => {
    expect(mentionId('<#123456789012345678>', 'channel')).toBe('123456789012345678');
    expect(mentionId('<#C0123ABCD|art>', 'channel')).toBe('C0123ABCD');
    expect(mentionId('<@!123456789012345678>', 'member')).toBe('123456789012345678');
    expect(mentionId('<@U0123ABCD|alice>', 'member')).toBe('U0123ABCD');
    expect(mentionId('<@&123456789012345678>', 'role')).toBe('123456789012345678');
    expect(mentionId('U0123ABCD', 'member')).toBe('U0123ABCD');
    // A role is not a member, a member not a channel.
    expect(mentionId('<@&123456789012345678>', 'member')).toBeUndefined();
    expect(mentionId('<@123456789012345678>', 'channel')).toBeUndefined();
    expect(mentionId('alice', 'member')).toBeUndefined();
  });

  it('reads every change, with the mentions to check', () => {
    expect(parse('channels all')).toEqual({ view: 'action', action: { kind: 'channels', mode: 'all', channelIds: [] }, mentions: [] });
    expect(parse('channels allow <#1111111111> <#C0222222|b> <#1111111111>')).toEqual({
      view: 'action',
      action: { kind: 'channels', mode: 'allow', channelIds: ['1111111111', 'C0222222'] },
      mentions: [{ kind: 'channel', id: '1111111111' }, { kind: 'channel', id: 'C0222222' }],
    });
    const action = (text: string) => {
      const p = parse(text);
      if (p.view !== 'action') throw new Error(`not an action: ${text}`);
      return p.action;
    };
    expect(action('channels deny <#1111111111>')).toEqual({ kind: 'channels', mode: 'deny', channelIds: ['1111111111'] });
    expect(action('daily 20')).toEqual({ kind: 'daily-units', units: 20 });
    expect(action('daily default')).toEqual({ kind: 'daily-units', units: null });
    expect(action('tier <@&2222222222> 50')).toEqual({ kind: 'role-tier', roleId: '2222222222', allowance: 50 });
    expect(action('tier <@&2222222222> Unlimited')).toEqual({ kind: 'role-tier', roleId: '2222222222', allowance: 'unlimited' });
    expect(action('tier <@&2222222222> remove')).toEqual({ kind: 'role-tier', roleId: '2222222222', allowance: null });
    expect(action('user <@U0123ABCD|alice> 5')).toEqual({ kind: 'user-limit', userId: 'U0123ABCD', allowance: 5 });
    expect(action('block <@3333333333>')).toEqual({ kind: 'block', userId: '3333333333' });
    expect(action('unblock <@!3333333333>')).toEqual({ kind: 'unblock', userId: '3333333333' });
    expect(action('grant <@3333333333> 3')).toEqual({ kind: 'grant', userId: '3333333333', units: 3 });
    expect(action('reset <@3333333333>')).toEqual({ kind: 'reset', userId: '3333333333' });
    expect(action('models all')).toEqual({ kind: 'models', modelKeys: null });
    const [a, b] = models;
    expect(action(`models ${a!.key} ${b!.key} ${a!.key}`)).toEqual({ kind: 'models', modelKeys: [a!.key, b!.key] });
    expect(action('max-resolution 2k')).toEqual({ kind: 'max-resolution', resolution: '2K' });
    expect(action('max-resolution none')).toEqual({ kind: 'max-resolution', resolution: null });
    expect(action('max-count 2')).toEqual({ kind: 'max-count', count: 2 });
    expect(action('max-count none')).toEqual({ kind: 'max-count', count: null });
    expect(action(`default model ${a!.key}`)).toEqual({ kind: 'default', field: 'model', value: a!.key });
    expect(action('default ratio 16x9')).toEqual({ kind: 'default', field: 'ratio', value: '16:9' });
    expect(action('default resolution none')).toEqual({ kind: 'default', field: 'resolution', value: null });
    expect(action('filter add Big Word')).toEqual({ kind: 'filter-add', pattern: 'Big Word' });
    expect(action('filter add /ch[aâ]teau/')).toEqual({ kind: 'filter-add', pattern: '/ch[aâ]teau/' });
    expect(action('filter remove Big Word')).toEqual({ kind: 'filter-remove', pattern: 'Big Word' });
    expect(action('spend-cap $2.50')).toEqual({ kind: 'spend-cap', usd: 2.5 });
    expect(action('spend-cap none')).toEqual({ kind: 'spend-cap', usd: null });
    expect(action('log-channel <#4444444444>')).toEqual({ kind: 'log-channel', channelId: '4444444444' });
    expect(action('log-channel none')).toEqual({ kind: 'log-channel', channelId: null });
  });

  it('refuses a wrong value naming what was typed and the form that is allowed', () => {
    expect(refusal('daily lots')).toEqual({
      code: 'ADMIN_INVALID',
      message: `"daily lots" doesn't fit. Use /imagine-admin daily <units|default> (${VERBS.daily!.what}). Mention channels as #channel, roles as @role and members as @member.`,
    });
    expect(refusal('max-count 9').message).toContain('/imagine-admin max-count <1-4|none>');
    expect(refusal('tier @Patrons 5').message).toContain('"tier @Patrons 5" doesn\'t fit');
    expect(refusal('grant <@3333333333> 0').code).toBe('ADMIN_INVALID');
    expect(refusal('channels allow').code).toBe('ADMIN_INVALID');
    expect(refusal('filter add /([/').message).toContain('filter add <word or /pattern/>');
    expect(refusal('spend-cap -3').code).toBe('ADMIN_INVALID');
    expect(refusal('audit everything').code).toBe('ADMIN_INVALID');
  });

  it('refuses an unknown word with every form, and an unknown model with the known ones', () => {
    const unknown = refusal('paint');
    expect(unknown.code).toBe('ADMIN_INVALID');
    expect(unknown.message.startsWith('"paint" is not something /imagine-admin knows. It takes:\n')).toBe(true);
    for (const verb of Object.values(VERBS)) for (const u of verb.usage) expect(unknown.message).toContain(u);
    expect(refusal('models dall-e')).toEqual({ code: 'UNKNOWN_MODEL', message: expect.stringContaining('There is no model "dall-e"') as string });
    expect(refusal('default model dall-e').code).toBe('UNKNOWN_MODEL');
  });

  it('the help lists every form from the one table, and fits one Discord message with the refusal around it', () => {
    const help = adminHelpText('imagine-admin');
    const forms = Object.values(VERBS).flatMap((v) => v.usage);
    expect(forms.every((u) => help.includes(`• ${u}`))).toBe(true);
    // Discord's message content limit (https://discord.com/developers/docs/resources/message#create-message).
    expect(`⚠️ ${refusal('someverylongwordthatisnotaverb').message}`.length).toBeLessThanOrEqual(2000);
  });
});
