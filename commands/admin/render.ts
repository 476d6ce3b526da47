/**
 * What /imagine-admin shows: the settings summary, confirmations, usage and the audit log, in
 * plain sentences both platforms share. Mentions are written as `<#id>`, `<@&id>` and `<@id>`,
 * which Discord and Slack both render (https://discord.com/developers/docs/reference#message-formatting,
 * https://api.slack.com/reference/surfaces/formatting#mentioning-users); the answers are private,
 * so a mention never pings anyone.
 */
import type { AdminAction, Allowance, AuditEntry, OperatorCeilings, ServerSettings, UsageReport, UsageRow } from '../../src/engine/governance/api.ts';
import { RESOLUTIONS, type ModelSpec } from '../../src/engine/models.ts';
import { MAX_IMAGES_PER_JOB } from '../../src/engine/request.ts';
import { DEFAULT_RATIO, DEFAULT_RESOLUTION } from '../imagine/definition.ts';
import { modelLabel, type TextFormat } from '../render.ts';

/** What the summary and the confirmations need besides the settings. */
export interface AdminRenderContext {
  readonly ceilings: OperatorCeilings;
  readonly defaultModel: ModelSpec;
  readonly format: TextFormat;
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
const channel = (id: string) => `<#${id}>`;
const role = (id: string) => `<@&${id}>`;
const member = (id: string) => `<@${id}>`;
const dollars = (n: number) => `$${n.toFixed(2)}`;
const allowanceText = (a: Allowance) => (typeof a === 'number' ? `${plural(a, 'unit')} per day` : 'no daily limit');

function channelsText(s: ServerSettings): string {
  const list = s.channels.ids.map(channel).join(', ');
  if (s.channels.mode === 'allow') return `only in ${list || 'no channel'}`;
  if (s.channels.mode === 'deny' && s.channels.ids.length > 0) return `everywhere except ${list}`;
  return 'in every channel';
}

function dailyText(s: ServerSettings, c: OperatorCeilings): string {
  return s.dailyUnits !== undefined ? plural(s.dailyUnits, 'unit') : `${plural(c.defaultDailyUnits, 'unit')} (the bot's default)`;
}

const entries = (record: Record<string, Allowance>, who: (id: string) => string) =>
  Object.entries(record).map(([id, a]) => `${who(id)} ${allowanceText(a)}`).join(', ') || 'none';

function defaultsText(s: ServerSettings, ctx: AdminRenderContext): string {
  const d = s.defaults;
  return [
    `model ${modelLabel(d.model ?? ctx.defaultModel.key)}${d.model ? '' : " (the bot's)"}`,
    `ratio ${d.ratio ?? DEFAULT_RATIO}${d.ratio ? '' : " (the bot's)"}`,
    `resolution ${d.resolution ?? DEFAULT_RESOLUTION}${d.resolution ? '' : " (the bot's)"}`,
  ].join(', ');
}

function spendCapText(s: ServerSettings, c: OperatorCeilings): string {
  if (s.spendCapUsd !== undefined) return `${dollars(s.spendCapUsd)} per day`;
  return c.globalSpendCapUsd !== undefined ? `none (the bot's own cap is ${dollars(c.globalSpendCapUsd)} per day)` : 'none';
}

/** The settings summary: one labeled line per setting. */
export function settingsSummaryText(s: ServerSettings, ctx: AdminRenderContext): string {
  const b = ctx.format.bold;
  return [
    b("This server's image bot settings"),
    `${b('Channels')}: /imagine works ${channelsText(s)}`,
    `${b('Daily units per member')}: ${dailyText(s, ctx.ceilings)} (the operator allows at most ${ctx.ceilings.maxDailyUnits})`,
    `${b('Role tiers')}: ${entries(s.roleTiers, role)}`,
    `${b('Member limits')}: ${entries(s.userLimits, member)}`,
    `${b('Blocked')}: ${s.blocked.map(member).join(', ') || 'nobody'}`,
    `${b('Models')}: ${s.models ? s.models.map(modelLabel).join(', ') || 'none' : 'every model the bot offers'}`,
    `${b('Largest size')}: ${s.maxResolution ?? `any (up to ${RESOLUTIONS[RESOLUTIONS.length - 1]})`}`,
    `${b('Images per request')}: ${s.maxCount !== undefined ? `at most ${s.maxCount}` : `up to ${MAX_IMAGES_PER_JOB}`}`,
    `${b('Defaults')}: ${defaultsText(s, ctx)}`,
    `${b('Prompt filter')}: ${s.filter.length > 0 ? `${plural(s.filter.length, 'entry', 'entries')} ("filter list" shows them)` : 'none'}`,
    `${b('Daily spending cap')}: ${spendCapText(s, ctx.ceilings)}`,
    `${b('Log channel')}: ${s.logChannel ? channel(s.logChannel) : 'none'}`,
    'Change one with e.g. "daily 20" or "channels allow #art"; "help" lists them all.',
  ].join('\n');
}

/** The confirmation after `action` was applied: what changed, and the new value as now stored. */
export function confirmationText(a: AdminAction, s: ServerSettings, ctx: AdminRenderContext): string {
  const esc = ctx.format.escape;
  switch (a.kind) {
    case 'channels':
      return `Done: /imagine now works ${channelsText(s)}.`;
    case 'daily-units':
      return `Done: members now get ${dailyText(s, ctx.ceilings)} per day.`;
    case 'role-tier':
      return a.allowance === null
        ? `Done: removed the tier of ${role(a.roleId)}. Role tiers now: ${entries(s.roleTiers, role)}.`
        : `Done: members with ${role(a.roleId)} now get ${allowanceText(s.roleTiers[a.roleId] ?? a.allowance)} (the highest of a member's tiers applies).`;
    case 'user-limit':
      return a.allowance === null
        ? `Done: removed ${member(a.userId)}'s own limit; their roles' tiers or the daily units apply again.`
        : `Done: ${member(a.userId)} now gets ${allowanceText(s.userLimits[a.userId] ?? a.allowance)}.`;
    case 'block':
      return `Done: ${member(a.userId)} is blocked from making images here. Blocked now: ${s.blocked.map(member).join(', ')}.`;
    case 'unblock':
      return `Done: ${member(a.userId)} may make images here again. Blocked now: ${s.blocked.map(member).join(', ') || 'nobody'}.`;
    case 'models':
      return `Done: members may use ${s.models ? s.models.map(modelLabel).join(', ') : 'every model the bot offers'}.`;
    case 'max-resolution':
      return `Done: images may be ${s.maxResolution ? `at most ${s.maxResolution}` : 'any size the models make'}.`;
    case 'max-count':
      return `Done: a request may make ${s.maxCount !== undefined ? `at most ${plural(s.maxCount, 'image')}` : `up to ${MAX_IMAGES_PER_JOB} images`}.`;
    case 'default':
      return `Done: this server's defaults are now ${defaultsText(s, ctx)}.`;
    case 'filter-add':
      return `Done: added "${esc(a.pattern)}" to the prompt filter (${plural(s.filter.length, 'entry', 'entries')} now).`;
    case 'filter-remove':
      return `Done: removed "${esc(a.pattern)}" from the prompt filter (${plural(s.filter.length, 'entry', 'entries')} now).`;
    case 'spend-cap':
      return `Done: this server's daily spending cap is ${spendCapText(s, ctx.ceilings)}.`;
    case 'log-channel':
      return s.logChannel ? `Done: changes and filter refusals are now also posted in ${channel(s.logChannel)}.` : 'Done: changes are no longer posted in a log channel.';
    case 'grant':
      return `Done: gave ${member(a.userId)} ${plural(a.units, 'extra unit')} for today.`;
    case 'reset':
      return `Done: ${member(a.userId)}'s day starts over; nothing is counted as used today.`;
  }
}

/** The prompt filter's entries, one a line. */
export function filterListText(s: ServerSettings, fmt: TextFormat): string {
  if (s.filter.length === 0) return 'The prompt filter is empty. Add a word with "filter add <word>" or a pattern with "filter add /pattern/".';
  return [fmt.bold(`Prompt filter (${plural(s.filter.length, 'entry', 'entries')})`), ...s.filter.map((e) => `• ${fmt.escape(e)}`)].join('\n');
}

const rowText = (r: Omit<UsageRow, 'key'>) => `${plural(r.images, 'image')}, ${plural(r.units, 'unit')}, ${dollars(r.usd)}`;

/** The usage view: totals, top members, per model. */
export function usageText(report: UsageReport, fmt: TextFormat): string {
  const when = report.period === 'day' ? `today (${report.label}, UTC)` : `this month (${report.label}, UTC)`;
  const lines = [fmt.bold(`Usage ${when}`), `Total: ${rowText(report.total)}`];
  if (report.byUser.length > 0) {
    lines.push(fmt.bold('Top members'), ...report.byUser.map((r, i) => `${i + 1}. ${member(r.key)}: ${rowText(r)}`));
    lines.push(fmt.bold('Per model'), ...report.byModel.map((r) => `• ${modelLabel(r.key)}: ${rowText(r)}`));
  } else {
    lines.push('No images were made here in that time.');
  }
  return lines.join('\n');
}

/** "2026-12-05 16:38 UTC". */
const utc = (ms: number) => `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;

/** The audit view: newest first, who, what, when. */
export function auditText(entries: readonly AuditEntry[], fmt: TextFormat): string {
  if (entries.length === 0) return 'Nothing in the audit log yet: no setting was changed and no prompt was refused here.';
  return [
    fmt.bold(`Last ${plural(entries.length, 'entry', 'entries')}, newest first`),
    ...entries.map((e) => `${utc(e.at)} · ${member(e.actorId)} · ${e.kind === 'filter' ? 'filter refusal: ' : ''}${e.summary}`),
  ].join('\n');
}
