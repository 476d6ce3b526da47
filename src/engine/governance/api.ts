/**
 * Governance: what a server's (Discord guild's) or workspace's (Slack team's) admins choose, within
 * the ceilings the operator sets in the environment, and each user's own defaults (/settings).
 * The rule (README "Who decides what"): the operator's ceilings always win; a server's settings
 * only narrow what a member may do, never widen it past them. It is enforced in one place,
 * policy.ts, which the engine calls on every submission before anything is reserved or sent.
 *
 * Everything here lives in the store (SQLite or Redis), so it survives restarts and every process
 * sharing the store applies a change at once. docs/governance.md describes the settings.
 */
import { z } from 'zod';
import { ALL_RATIOS, RESOLUTIONS, type Resolution } from '../models.ts';
import { MAX_IMAGES_PER_JOB, type Platform, type Requester } from '../request.ts';

/** An allowance in units per day: a number, or no limit (only where the operator allows it). */
export const UNLIMITED = 'unlimited';
export const allowanceSchema = z.union([z.int().min(0), z.literal(UNLIMITED)]);
export type Allowance = z.infer<typeof allowanceSchema>;

/** A server or workspace: `discord:<guildId>` or `slack:<teamId>`. */
export type ScopeKey = `${Platform}:${string}`;

/** The scope a requester acts in; undefined in DMs without a server and in the CLI. */
export function scopeOf(requester: Requester): ScopeKey | undefined {
  return requester.scope ? `${requester.platform}:${requester.scope}` : undefined;
}

export const CHANNEL_MODES = ['all', 'allow', 'deny'] as const;

/** A server's settings as stored. Every field has a default: a server nobody configured gets them. */
export const serverSettingsSchema = z.object({
  /** Where /imagine may be used: everywhere, only in `ids`, or everywhere but `ids`. */
  channels: z.object({ mode: z.enum(CHANNEL_MODES), ids: z.array(z.string()) }).default({ mode: 'all', ids: [] }),
  /** Units per member per day; absent: the operator's QUOTA_DAILY_UNITS. */
  dailyUnits: z.int().min(0).optional(),
  /** Discord role id → allowance; a member gets the highest of their roles' tiers. */
  roleTiers: z.record(z.string(), allowanceSchema).default({}),
  /** User id → allowance, above any tier (Slack's per-user overrides; Discord too). */
  userLimits: z.record(z.string(), allowanceSchema).default({}),
  /** User ids who may not use the bot here. */
  blocked: z.array(z.string()).default([]),
  /** Model keys members may use; absent: every configured model. */
  models: z.array(z.string()).optional(),
  maxResolution: z.enum(RESOLUTIONS).optional(),
  maxCount: z.int().min(1).max(MAX_IMAGES_PER_JOB).optional(),
  /** What a request gets when neither the user's option nor their /settings says. */
  defaults: z
    .object({ model: z.string().optional(), ratio: z.enum(ALL_RATIOS).optional(), resolution: z.enum(RESOLUTIONS).optional() })
    .default({}),
  /** Prompt filter: words, or /patterns/ (case- and accent-insensitive). */
  filter: z.array(z.string()).default([]),
  /** This server's daily USD cap, under the operator's global one. */
  spendCapUsd: z.number().positive().optional(),
  /** A channel where every admin change and filter refusal is also posted. */
  logChannel: z.string().optional(),
});
export type ServerSettings = z.infer<typeof serverSettingsSchema>;

/** A user's own defaults (/settings): used whenever an option is not given. */
export const userPreferencesSchema = z.object({
  model: z.string().optional(),
  ratio: z.enum(ALL_RATIOS).optional(),
  resolution: z.enum(RESOLUTIONS).optional(),
  count: z.int().min(1).max(MAX_IMAGES_PER_JOB).optional(),
  private: z.boolean().optional(),
});
export type UserPreferences = z.infer<typeof userPreferencesSchema>;

/** How long a dispatcher waits for a user's /settings before answering (Discord and Slack give 3 s). */
export const PREFERENCES_READ_BUDGET_MS = 500;

/**
 * What a request gets when the user's /settings could not be read within the budget (the store
 * is slow, down, or failed): the defaults, answered privately. A user who chose "private by
 * default" must not see their result posted in public because the store hiccupped; a user who
 * did not gets one private result (an explicit `private` option still wins).
 */
export const UNREAD_PREFERENCES: UserPreferences = Object.freeze({ private: true });

/** What the user is told (privately) when a request of theirs went ahead with UNREAD_PREFERENCES. */
export const unreadPreferencesNotice = (p: { private: boolean }): string =>
  `Your /settings could not be read just now, so this image uses the defaults${p.private ? ' and only you can see it' : ''}. Try again in a moment if that is not what you wanted.`;

/** The operator's ceilings (environment, src/config.ts): no server setting goes past them. */
export interface OperatorCeilings {
  /** QUOTA_DAILY_UNITS: a member's units per day where the server set nothing. */
  defaultDailyUnits: number;
  /** QUOTA_MAX_DAILY_UNITS: the most units per day a server may give anyone. */
  maxDailyUnits: number;
  /** QUOTA_ALLOW_UNLIMITED: whether a server may give a role or user no limit. */
  allowUnlimited: boolean;
  /** SERVER_SPEND_CAP_MAX_USD: the highest per-server daily USD cap; absent: any, up to the global cap. */
  maxServerSpendCapUsd?: number | undefined;
  /** SPEND_CAP_DAILY_USD: the global cap. */
  globalSpendCapUsd?: number | undefined;
}

/** One change an admin asks for (commands/admin parses it; policy.ts validates and applies it). */
export type AdminChange =
  | { kind: 'channels'; mode: (typeof CHANNEL_MODES)[number]; channelIds: string[] }
  | { kind: 'daily-units'; units: number | null }
  | { kind: 'role-tier'; roleId: string; allowance: Allowance | null }
  | { kind: 'user-limit'; userId: string; allowance: Allowance | null }
  | { kind: 'block'; userId: string }
  | { kind: 'unblock'; userId: string }
  | { kind: 'models'; modelKeys: string[] | null }
  | { kind: 'max-resolution'; resolution: Resolution | null }
  | { kind: 'max-count'; count: number | null }
  | { kind: 'default'; field: 'model' | 'ratio' | 'resolution'; value: string | null }
  | { kind: 'filter-add'; pattern: string }
  | { kind: 'filter-remove'; pattern: string }
  | { kind: 'spend-cap'; usd: number | null }
  | { kind: 'log-channel'; channelId: string | null };

/** What an admin may do: change a setting, or act on one member's day. */
export type AdminAction = AdminChange | { kind: 'grant'; userId: string; units: number } | { kind: 'reset'; userId: string };

export type UsagePeriod = 'day' | 'month';
export interface UsageRow {
  /** A user id (without platform) or a model key. */
  key: string;
  images: number;
  units: number;
  usd: number;
}
export interface UsageReport {
  period: UsagePeriod;
  /** The UTC day (YYYY-MM-DD) or month (YYYY-MM) reported. */
  label: string;
  total: Omit<UsageRow, 'key'>;
  /** Most units first. */
  byUser: UsageRow[];
  byModel: UsageRow[];
}

export interface AuditEntry {
  at: number;
  /** The user id of who did it (without platform). */
  actorId: string;
  kind: 'admin' | 'filter';
  /** What happened, platform-neutral (mentions as `<@id>`, `<#id>`, `<@&id>`), never a filter's pattern for a refusal. */
  summary: string;
}

/** A member's allowance here today, as /quota and the admin's view show it. */
export interface AllowanceView {
  allowance: Allowance;
  /** Extra units an admin granted for today (included in `allowance` when it is a number). */
  granted: number;
  blocked: boolean;
}

export interface GovernanceApi {
  readonly ceilings: OperatorCeilings;
  /** The server's settings (defaults when nobody configured it). One store read. */
  settings(scope: ScopeKey): Promise<ServerSettings>;
  /**
   * Validates `action` against the operator's ceilings and the model catalog, applies it
   * atomically, records it in the audit log (and posts it to the log channel, if any). Throws a
   * BotError whose sentence says what is wrong (a value beyond a ceiling, an unknown model…).
   */
  apply(scope: ScopeKey, actor: Requester, action: AdminAction): Promise<ServerSettings>;
  usage(scope: ScopeKey, period: UsagePeriod, top: number): Promise<UsageReport>;
  /** Newest first. */
  audit(scope: ScopeKey, limit: number): Promise<AuditEntry[]>;
  /** What `requester` may use per day here now (tiers, overrides, grants, ceilings applied). */
  allowance(requester: Requester): Promise<AllowanceView>;
  /**
   * The user's /settings. With `withinMs`, read before a platform's answer: a read that fails or
   * takes longer (an outage queues commands) gives UNREAD_PREFERENCES in time instead of holding
   * the answer past the platform's deadline; the server's rules still apply at submission.
   * Without, it waits, and a failure rejects.
   */
  preferences(requester: Requester, withinMs?: number): Promise<UserPreferences>;
  /**
   * The user's /settings read at once, without giving up the event loop's turn, where the store
   * reads synchronously (SQLite, Store.getNow); undefined where it cannot (Redis) or the read
   * failed: then `preferences()`. For an acknowledgement whose form depends on them (Discord's
   * ephemeral defer), so a burst's acks are not queued behind each other's reads.
   */
  preferencesNow(requester: Requester): UserPreferences | undefined;
  /** Replaces the user's preferences (validated against the catalog); `{}` clears them. */
  setPreferences(requester: Requester, preferences: UserPreferences): Promise<UserPreferences>;
}
