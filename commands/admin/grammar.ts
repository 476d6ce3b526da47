/**
 * /imagine-admin's one grammar (docs/governance.md "Admin command"): the text an admin types
 * ("channels allow #art", "tier @Patrons 50") → an AdminAction for engine.governance.apply, or a
 * view (the summary, usage, the audit log…). Both platforms pass the text the same way (Discord's
 * `action` option, Slack's command text), and mentions arrive as the platform's markup: Discord
 * `<@id>`/`<@!id>`, `<#id>`, `<@&id>` (https://discord.com/developers/docs/reference#message-formatting),
 * Slack `<@U123|name>`, `<#C123|name>` (https://api.slack.com/reference/surfaces/formatting#retrieving-messages);
 * both are accepted everywhere, and a bare id too.
 *
 * The table VERBS is the one source: the parser, the help text and every "what is allowed"
 * sentence are built from it. Parsing is pure (no I/O): mentions are checked against the server
 * afterwards (commands/admin/index.ts), values against the operator's ceilings by the engine.
 */
import { UNLIMITED, type AdminAction, type Allowance, type UsagePeriod } from '../../src/engine/governance/api.ts';
import { ALL_RATIOS, findModel, RESOLUTIONS, type ModelSpec, type Ratio, type Resolution } from '../../src/engine/models.ts';
import { MAX_IMAGES_PER_JOB } from '../../src/engine/request.ts';
import { UserFacingError } from '../../src/errors.ts';

/** A mention to check against the server before applying (unknown → UNKNOWN_CHANNEL/ROLE/USER). */
export interface Mention {
  readonly kind: 'channel' | 'role' | 'member';
  readonly id: string;
}

export type AdminView =
  | { readonly view: 'show' }
  | { readonly view: 'help' }
  | { readonly view: 'usage'; readonly period: UsagePeriod }
  | { readonly view: 'audit' }
  | { readonly view: 'filter-list' };

export type ParsedAdmin = AdminView | { readonly view: 'action'; readonly action: AdminAction; readonly mentions: readonly Mention[] };

/** What a verb's parser gets: the words after the verb, the raw rest (for filter patterns), and the catalog. */
interface VerbInput {
  readonly args: readonly string[];
  readonly rest: string;
  readonly models: readonly ModelSpec[];
}

interface Verb {
  /** The forms, as the help text shows them (the first word is the verb). */
  readonly usage: readonly string[];
  readonly what: string;
  /** Undefined when the words don't fit this verb: the caller then names what was typed and the usage. */
  parse(input: VerbInput): ParsedAdmin | undefined;
}

const MENTION_PATTERNS: Record<Mention['kind'], RegExp> = {
  channel: /^<#([A-Za-z0-9]+)(?:\|[^>]*)?>$/,
  role: /^<@&(\d+)>$/,
  member: /^<@!?([A-Za-z0-9]+)(?:\|[^>]*)?>$/,
};
/** A bare id: a Discord snowflake, or a Slack id (C…, U…, W…). */
const BARE_ID = /^(?:\d{5,25}|[A-Z][A-Z0-9]{5,})$/;

/** The id in a mention of `kind` (or a bare id), else undefined. */
export function mentionId(word: string | undefined, kind: Mention['kind']): string | undefined {
  if (word === undefined) return undefined;
  const m = MENTION_PATTERNS[kind].exec(word);
  if (m?.[1]) return m[1];
  return BARE_ID.test(word) ? word : undefined;
}

const NONE_WORDS = ['none', 'off'];
const isNone = (word: string | undefined) => word !== undefined && NONE_WORDS.includes(word.toLowerCase());

/** A whole number ≥ min ("20", not "20.5" or "-1"). */
function wholeNumber(word: string | undefined, min = 0): number | undefined {
  if (word === undefined || !/^\d{1,9}$/.test(word)) return undefined;
  const n = Number(word);
  return n >= min ? n : undefined;
}

/** "50" | "unlimited" → an allowance; "remove" → null. */
function allowanceOrRemove(word: string | undefined): Allowance | null | undefined {
  if (word === undefined) return undefined;
  const lowered = word.toLowerCase();
  if (lowered === 'remove') return null;
  if (lowered === UNLIMITED) return UNLIMITED;
  return wholeNumber(word);
}

function resolution(word: string | undefined): Resolution | undefined {
  return RESOLUTIONS.find((r) => r === word?.toUpperCase());
}

function ratio(word: string | undefined): Ratio | undefined {
  const normalized = word?.toLowerCase().replace(/^(\d+)\s*[x/∶×]\s*(\d+)$/u, '$1:$2');
  return ALL_RATIOS.find((r) => r === normalized);
}

/** A model key, alias or label → its key; an unknown one is refused with the configured keys. */
function modelKey(word: string, models: readonly ModelSpec[]): string {
  const model = findModel(models, word);
  if (!model) throw new UserFacingError('UNKNOWN_MODEL', { given: word, known: models.map((m) => m.key) });
  return model.key;
}

/** "$5", "5", "2.50" → 5, 5, 2.5 (positive, at most two decimals). */
function usd(word: string | undefined): number | undefined {
  const m = word === undefined ? null : /^\$?(\d{1,7}(?:[.,]\d{1,2})?)$/.exec(word);
  const n = m?.[1] ? Number(m[1].replace(',', '.')) : NaN;
  return n > 0 ? n : undefined;
}

const action = (a: AdminAction, mentions: Mention[] = []): ParsedAdmin => ({ view: 'action', action: a, mentions });

/** A member-targeted action: `<verb> @member`. */
function memberVerb(usage: string, what: string, make: (userId: string) => AdminAction): Verb {
  return {
    usage: [usage],
    what,
    parse: ({ args }) => {
      const id = args.length === 1 ? mentionId(args[0], 'member') : undefined;
      return id === undefined ? undefined : action(make(id), [{ kind: 'member', id }]);
    },
  };
}

/** Every word the command takes, in the order the help lists them. */
export const VERBS: Readonly<Record<string, Verb>> = {
  show: { usage: ['show'], what: "this server's settings (also what an empty command shows)", parse: ({ args }) => (args.length === 0 ? { view: 'show' } : undefined) },
  channels: {
    usage: ['channels all', 'channels allow #a #b', 'channels deny #a'],
    what: 'where /imagine may be used: everywhere, only in the channels listed, or everywhere but them',
    parse: ({ args }) => {
      const [mode, ...rest] = args;
      const lowered = mode?.toLowerCase();
      if (lowered === 'all') return rest.length === 0 ? action({ kind: 'channels', mode: 'all', channelIds: [] }) : undefined;
      if (lowered !== 'allow' && lowered !== 'deny') return undefined;
      const ids = rest.map((w) => mentionId(w, 'channel'));
      if (ids.length === 0 || ids.some((id) => id === undefined)) return undefined;
      const channelIds = [...new Set(ids as string[])];
      return action({ kind: 'channels', mode: lowered, channelIds }, channelIds.map((id) => ({ kind: 'channel', id })));
    },
  },
  daily: {
    usage: ['daily <units|default>'],
    what: 'units per member per day (default: the bot\'s own)',
    parse: ({ args }) => {
      if (args.length !== 1) return undefined;
      if (args[0]?.toLowerCase() === 'default') return action({ kind: 'daily-units', units: null });
      const units = wholeNumber(args[0]);
      return units === undefined ? undefined : action({ kind: 'daily-units', units });
    },
  },
  tier: {
    usage: ['tier @role <units|unlimited|remove>'],
    what: "a role's units per day (a member gets the highest of their roles' tiers)",
    parse: ({ args }) => {
      const roleId = mentionId(args[0], 'role');
      const allowance = allowanceOrRemove(args[1]);
      if (args.length !== 2 || roleId === undefined || allowance === undefined) return undefined;
      return action({ kind: 'role-tier', roleId, allowance }, [{ kind: 'role', id: roleId }]);
    },
  },
  user: {
    usage: ['user @member <units|unlimited|remove>'],
    what: "one member's units per day, above any tier",
    parse: ({ args }) => {
      const userId = mentionId(args[0], 'member');
      const allowance = allowanceOrRemove(args[1]);
      if (args.length !== 2 || userId === undefined || allowance === undefined) return undefined;
      return action({ kind: 'user-limit', userId, allowance }, [{ kind: 'member', id: userId }]);
    },
  },
  block: memberVerb('block @member', 'stop a member from making images here', (userId) => ({ kind: 'block', userId })),
  unblock: memberVerb('unblock @member', 'let a blocked member make images again', (userId) => ({ kind: 'unblock', userId })),
  grant: {
    usage: ['grant @member <units>'],
    what: 'extra units for a member, for today',
    parse: ({ args }) => {
      const userId = mentionId(args[0], 'member');
      const units = wholeNumber(args[1], 1);
      if (args.length !== 2 || userId === undefined || units === undefined) return undefined;
      return action({ kind: 'grant', userId, units }, [{ kind: 'member', id: userId }]);
    },
  },
  reset: memberVerb('reset @member', "start a member's day over (nothing used today)", (userId) => ({ kind: 'reset', userId })),
  models: {
    usage: ['models <key ...|all>'],
    what: 'which models members may use',
    parse: ({ args, models }) => {
      if (args.length === 0) return undefined;
      if (args.length === 1 && args[0]?.toLowerCase() === 'all') return action({ kind: 'models', modelKeys: null });
      return action({ kind: 'models', modelKeys: [...new Set(args.map((w) => modelKey(w, models)))] });
    },
  },
  'max-resolution': {
    usage: [`max-resolution <${RESOLUTIONS.join('|')}|none>`],
    what: 'the largest image size members may ask for',
    parse: ({ args }) => {
      if (args.length !== 1) return undefined;
      if (isNone(args[0])) return action({ kind: 'max-resolution', resolution: null });
      const r = resolution(args[0]);
      return r === undefined ? undefined : action({ kind: 'max-resolution', resolution: r });
    },
  },
  'max-count': {
    usage: [`max-count <1-${MAX_IMAGES_PER_JOB}|none>`],
    what: 'the most images per request',
    parse: ({ args }) => {
      if (args.length !== 1) return undefined;
      if (isNone(args[0])) return action({ kind: 'max-count', count: null });
      const count = wholeNumber(args[0], 1);
      return count === undefined || count > MAX_IMAGES_PER_JOB ? undefined : action({ kind: 'max-count', count });
    },
  },
  default: {
    usage: ['default model <key|none>', `default ratio <${ALL_RATIOS.slice(0, 4).join('|')}…|none>`, `default resolution <${RESOLUTIONS.join('|')}|none>`],
    what: "what a request gets when the member's options and /settings don't say",
    parse: ({ args, models }) => {
      const [field, value] = args;
      if (args.length !== 2 || value === undefined) return undefined;
      const f = field?.toLowerCase();
      if (f !== 'model' && f !== 'ratio' && f !== 'resolution') return undefined;
      if (isNone(value)) return action({ kind: 'default', field: f, value: null });
      const parsed = f === 'model' ? modelKey(value, models) : f === 'ratio' ? ratio(value) : resolution(value);
      return parsed === undefined ? undefined : action({ kind: 'default', field: f, value: parsed });
    },
  },
  filter: {
    usage: ['filter add <word or /pattern/>', 'filter remove <entry>', 'filter list'],
    what: 'words or /patterns/ a prompt may not contain (case and accents ignored)',
    parse: ({ args, rest }) => {
      const sub = args[0]?.toLowerCase();
      if (sub === 'list') return args.length === 1 ? { view: 'filter-list' } : undefined;
      if (sub !== 'add' && sub !== 'remove') return undefined;
      const pattern = rest.slice(rest.toLowerCase().indexOf(sub) + sub.length).trim();
      if (pattern === '' || (sub === 'add' && !validPattern(pattern))) return undefined;
      return action({ kind: sub === 'add' ? 'filter-add' : 'filter-remove', pattern });
    },
  },
  'spend-cap': {
    usage: ['spend-cap <usd|none>'],
    what: "this server's daily spending cap in US dollars, under the bot's own",
    parse: ({ args }) => {
      if (args.length !== 1) return undefined;
      if (isNone(args[0])) return action({ kind: 'spend-cap', usd: null });
      const n = usd(args[0]);
      return n === undefined ? undefined : action({ kind: 'spend-cap', usd: n });
    },
  },
  'log-channel': {
    usage: ['log-channel <#channel|none>'],
    what: 'a channel where every change and filter refusal is also posted',
    parse: ({ args }) => {
      if (args.length !== 1) return undefined;
      if (isNone(args[0])) return action({ kind: 'log-channel', channelId: null });
      const id = mentionId(args[0], 'channel');
      return id === undefined ? undefined : action({ kind: 'log-channel', channelId: id }, [{ kind: 'channel', id }]);
    },
  },
  usage: {
    usage: ['usage [today|month]'],
    what: 'images, units and dollars per member and per model',
    parse: ({ args }) => {
      const p = args[0]?.toLowerCase();
      if (args.length > 1 || (p !== undefined && p !== 'today' && p !== 'month')) return undefined;
      return { view: 'usage', period: p === 'month' ? 'month' : 'day' };
    },
  },
  audit: { usage: ['audit'], what: 'the last changes and filter refusals (who, what, when)', parse: ({ args }) => (args.length === 0 ? { view: 'audit' } : undefined) },
  help: { usage: ['help'], what: 'this list', parse: ({ args }) => (args.length === 0 ? { view: 'help' } : undefined) },
};

/** A /pattern/ must compile (the engine matches it case- and accent-insensitively); a word always fits. */
function validPattern(entry: string): boolean {
  const m = /^\/(.+)\/$/s.exec(entry);
  if (!m?.[1]) return true;
  try {
    new RegExp(m[1], 'iu');
    return true;
  } catch {
    return false;
  }
}

/** The help text: every form and what it does, from VERBS. Short enough for one Discord message (2,000 characters). */
export function adminHelpText(command: string): string {
  const lines = Object.values(VERBS).flatMap((verb) => verb.usage.map((u, i) => `• ${u}${i === 0 ? ` — ${verb.what}` : ''}`));
  return [
    `/${command} followed by one of these shows or changes this server's rules (mention channels, roles and members as usual: #art, @Patrons, @alice):`,
    ...lines,
    "Limits can't go past the bot operator's ceilings.",
  ].join('\n');
}

const invalid = (sentence: string) => new UserFacingError('ADMIN_INVALID', { sentence });

/**
 * Parses the admin's text. Throws ADMIN_INVALID naming what was typed and what is allowed (an
 * unknown first word lists every form), or UNKNOWN_MODEL for a model the bot doesn't offer.
 */
export function parseAdminText(text: string, models: readonly ModelSpec[], command = 'imagine-admin'): ParsedAdmin {
  const rest = text.trim();
  if (rest === '') return { view: 'show' };
  const [first = '', ...args] = rest.split(/\s+/);
  const verb = VERBS[first.toLowerCase()];
  if (!verb) {
    throw invalid(`"${first}" is not something /${command} knows. It takes:\n${adminHelpText(command).split('\n').slice(1).join('\n')}`);
  }
  const parsed = verb.parse({ args, rest: rest.slice(first.length), models });
  if (!parsed) {
    const forms = verb.usage.map((u) => `/${command} ${u}`).join(', or ');
    throw invalid(`"${rest}" doesn't fit. Use ${forms} (${verb.what}). Mention channels as #channel, roles as @role and members as @member.`);
  }
  return parsed;
}
