/**
 * GovernanceApi (api.ts) on the store: a server's settings are one Keyv record per scope, a
 * user's /settings one record per user; grants and resets are the quota's daily counters
 * (quota.ts). Nothing is cached in the process: every read is one store read, so a change made
 * through any process sharing the store applies at once everywhere (docs/governance.md).
 *
 * The usage report and the audit log are behind two small interfaces (UsageReports, AuditTrail)
 * so the ledger (governance/usage.ts, governance/audit.ts) plugs in without this file knowing it.
 */
import { randomUUID } from 'node:crypto';
import { UserFacingError } from '../../errors.ts';
import { sleep } from '../../util/sleep.ts';
import type { ModelSpec } from '../models.ts';
import type { Quotas } from '../quota.ts';
import type { ImagineRequest, Requester } from '../request.ts';
import type { Store } from '../store.ts';
import {
  scopeOf,
  serverSettingsSchema,
  userPreferencesSchema,
  UNLIMITED,
  UNREAD_PREFERENCES,
  type AdminAction,
  type AllowanceView,
  type AuditEntry,
  type GovernanceApi,
  type OperatorCeilings,
  type ScopeKey,
  type ServerSettings,
  type UsagePeriod,
  type UsageReport,
  type UserPreferences,
} from './api.ts';
import { allowanceWithGrants, applyChange, baseAllowance, decide, validatePreferences, type PolicyDecision } from './policy.ts';

/** The audit log (governance/audit.ts implements it): every admin change and filter refusal. */
export interface AuditTrail {
  /** Records `entry` now; also posts it to `logChannel` when given. */
  record(scope: ScopeKey, entry: Omit<AuditEntry, 'at'>, logChannel?: string): Promise<void>;
  /** Newest first. */
  list(scope: ScopeKey, limit: number): Promise<AuditEntry[]>;
}

/** Usage per user and per model (governance/usage.ts implements it). */
export interface UsageReports {
  report(scope: ScopeKey, period: UsagePeriod, top: number): Promise<UsageReport>;
}

/** How long one admin change may hold its scope's lock (a read, a check and a write). */
const SETTINGS_LEASE_MS = 5_000;
/** How long a change waits for the lock before giving up (another admin's change is a few ms). */
const SETTINGS_LOCK_WAIT_MS = 10_000;
const SETTINGS_LOCK_RETRY_MS = 15;

export interface GovernanceOptions {
  store: Store;
  quotas: Quotas;
  ceilings: OperatorCeilings;
  models: readonly ModelSpec[];
  defaultModel: ModelSpec;
  audit: AuditTrail;
  usage?: UsageReports | undefined;
}

const settingsKey = (scope: ScopeKey) => `gov:settings:${scope}`;
const preferencesKey = (requester: Requester) => `gov:prefs:${requester.platform}:${requester.userId}`;
/** A user's stored /settings as they apply: none saved, or unreadable (an older shape), are the defaults. */
const preferencesOf = (raw: unknown): UserPreferences => {
  const parsed = userPreferencesSchema.safeParse(raw ?? {});
  return parsed.success ? parsed.data : {};
};

export class Governance implements GovernanceApi {
  readonly ceilings: OperatorCeilings;
  readonly #store: Store;
  readonly #quotas: Quotas;
  readonly #models: readonly ModelSpec[];
  readonly #defaultModel: ModelSpec;
  readonly #audit: AuditTrail;
  readonly #usage: UsageReports | undefined;

  constructor(opts: GovernanceOptions) {
    this.ceilings = opts.ceilings;
    this.#store = opts.store;
    this.#quotas = opts.quotas;
    this.#models = opts.models;
    this.#defaultModel = opts.defaultModel;
    this.#audit = opts.audit;
    this.#usage = opts.usage;
  }

  async settings(scope: ScopeKey): Promise<ServerSettings> {
    const raw = await this.#store.kv.get<unknown>(settingsKey(scope));
    return serverSettingsSchema.parse(raw ?? {});
  }

  async apply(scope: ScopeKey, actor: Requester, action: AdminAction): Promise<ServerSettings> {
    const who = `<@${actor.userId}>`;
    if (action.kind === 'grant') {
      if (!Number.isSafeInteger(action.units) || action.units < 1)
        throw new UserFacingError('ADMIN_INVALID', { sentence: 'Grant a whole number of units, 1 or more.' });
      const userKey = `${actor.platform}:${action.userId}`;
      // A day's grants stay within the operator's ceiling: an admin cannot give more in total.
      const total = await this.#quotas.grant(scope, userKey, action.units, this.ceilings.maxDailyUnits);
      if (total === null)
        throw new UserFacingError('ABOVE_CEILING', {
          what: "one member's extra units for a day",
          value: `${(await this.#quotas.grantedToday(scope, userKey)) + action.units} units`,
          ceiling: `${this.ceilings.maxDailyUnits} units`,
        });
      const settings = await this.settings(scope);
      await this.#audit.record(scope, { actorId: actor.userId, kind: 'admin', summary: `${who} granted <@${action.userId}> ${unitsText(action.units)} more for today` }, settings.logChannel);
      return settings;
    }
    if (action.kind === 'reset') {
      await this.#quotas.resetToday(`${actor.platform}:${action.userId}`);
      const settings = await this.settings(scope);
      await this.#audit.record(scope, { actorId: actor.userId, kind: 'admin', summary: `${who} reset <@${action.userId}>'s units for today` }, settings.logChannel);
      return settings;
    }
    const next = await this.#underLock(scope, async () => {
      const current = await this.settings(scope);
      const changed = applyChange(current, action, this.ceilings, this.#models);
      await this.#store.kv.set(settingsKey(scope), changed);
      return changed;
    });
    await this.#audit.record(scope, { actorId: actor.userId, kind: 'admin', summary: `${who} ${describeChange(action)}` }, next.logChannel);
    return next;
  }

  async usage(scope: ScopeKey, period: UsagePeriod, top: number): Promise<UsageReport> {
    if (this.#usage) return this.#usage.report(scope, period, top);
    const label = new Date().toISOString().slice(0, period === 'day' ? 10 : 7);
    return { period, label, total: { images: 0, units: 0, usd: 0 }, byUser: [], byModel: [] };
  }

  audit(scope: ScopeKey, limit: number): Promise<AuditEntry[]> {
    return this.#audit.list(scope, limit);
  }

  async allowance(requester: Requester): Promise<AllowanceView> {
    const scope = scopeOf(requester);
    if (!scope) return { allowance: this.ceilings.defaultDailyUnits, granted: 0, blocked: false };
    const [settings, granted] = await Promise.all([this.settings(scope), this.#quotas.grantedToday(scope, this.#quotas.userKey(requester))]);
    return {
      allowance: allowanceWithGrants(baseAllowance(settings, requester, this.ceilings), granted),
      granted,
      blocked: settings.blocked.includes(requester.userId),
    };
  }

  async preferences(requester: Requester, withinMs?: number): Promise<UserPreferences> {
    // At once where the store reads synchronously (SQLite): nothing to wait for, no timer.
    const now = this.preferencesNow(requester);
    if (now) return now;
    const read = this.#store.kv.get<unknown>(preferencesKey(requester));
    if (withinMs === undefined) return preferencesOf(await read);
    const unread = Symbol('unread');
    // A plain timer, cleared: an aborted sleep would build a DOMException (a stack trace) per command.
    let timer: NodeJS.Timeout | undefined;
    const tooLate = new Promise<typeof unread>((resolve) => {
      timer = setTimeout(resolve, withinMs, unread);
    });
    try {
      const raw = await Promise.race([read.catch(() => unread), tooLate]);
      return raw === unread ? UNREAD_PREFERENCES : preferencesOf(raw);
    } finally {
      clearTimeout(timer);
    }
  }

  preferencesNow(requester: Requester): UserPreferences | undefined {
    if (!this.#store.getNow) return undefined;
    let raw: unknown;
    try {
      raw = this.#store.getNow(preferencesKey(requester));
    } catch {
      return undefined; // the store's error comes again, and is handled, on the asynchronous read
    }
    return preferencesOf(raw);
  }

  async setPreferences(requester: Requester, preferences: UserPreferences): Promise<UserPreferences> {
    const valid = validatePreferences(userPreferencesSchema.parse(preferences), this.#models, this.#defaultModel);
    if (Object.values(valid).every((v) => v === undefined)) await this.#store.kv.delete(preferencesKey(requester));
    else await this.#store.kv.set(preferencesKey(requester), valid);
    return valid;
  }

  /**
   * The policy for one request (policy.ts decide()), with what it needs read from the store: the
   * server's settings and today's grant. A filter refusal is recorded in the audit log (who was
   * refused, never the rule or the prompt). Throws the refusal.
   */
  async decide(request: ImagineRequest): Promise<Extract<PolicyDecision, { ok: true }> & { serverSpendCapUsd?: number | undefined }> {
    const scope = scopeOf(request.requester);
    const [settings, granted] = scope
      ? await Promise.all([this.settings(scope), this.#quotas.grantedToday(scope, this.#quotas.userKey(request.requester))])
      : [undefined, 0];
    const decision = decide({ request, settings, ceilings: this.ceilings, models: this.#models, exempt: this.#quotas.isExempt(request.requester), granted });
    if (decision.ok) return { ...decision, serverSpendCapUsd: settings?.spendCapUsd };
    if (decision.filtered && scope) {
      await this.#audit
        .record(scope, { actorId: request.requester.userId, kind: 'filter', summary: `The prompt filter refused a prompt from <@${request.requester.userId}>` }, settings?.logChannel)
        .catch(() => undefined); // the refusal stands even if the log is unavailable
    }
    throw decision.error;
  }

  /** The limit /quota shows for `requester` here (exempt users: none). */
  async quotaLimit(requester: Requester): Promise<number | typeof UNLIMITED> {
    if (this.#quotas.isExempt(requester)) return UNLIMITED;
    return (await this.allowance(requester)).allowance;
  }

  /** Runs `fn` holding the scope's settings lock: two admins changing settings at once both land. */
  async #underLock<T>(scope: ScopeKey, fn: () => Promise<T>): Promise<T> {
    const key = `gov:lock:${scope}`;
    const owner = randomUUID();
    const giveUpAt = Date.now() + SETTINGS_LOCK_WAIT_MS;
    while (!(await this.#store.lease(key, owner, SETTINGS_LEASE_MS))) {
      if (Date.now() > giveUpAt) throw new Error(`settings of ${scope} stayed locked for ${SETTINGS_LOCK_WAIT_MS} ms`);
      await sleep(SETTINGS_LOCK_RETRY_MS);
    }
    try {
      return await fn();
    } finally {
      await this.#store.releaseLease(key, owner).catch(() => undefined);
    }
  }
}

const unitsText = (n: number) => `${n} unit${n === 1 ? '' : 's'}`;

/** "set the daily units to 10": the audit log's words for a change (a filter entry is never echoed). */
export function describeChange(change: Exclude<AdminAction, { kind: 'grant' } | { kind: 'reset' }>): string {
  const allowance = (a: number | typeof UNLIMITED | null) => (a === null ? 'the default' : a === UNLIMITED ? 'unlimited' : unitsText(a));
  switch (change.kind) {
    case 'channels':
      return change.mode === 'all'
        ? 'allowed /imagine in every channel'
        : `${change.mode === 'allow' ? 'allowed /imagine only in' : 'denied /imagine in'} ${change.channelIds.map((c) => `<#${c}>`).join(', ')}`;
    case 'daily-units':
      return `set the daily units per member to ${allowance(change.units)}`;
    case 'role-tier':
      return `set the tier of <@&${change.roleId}> to ${allowance(change.allowance)}`;
    case 'user-limit':
      return `set the daily units of <@${change.userId}> to ${allowance(change.allowance)}`;
    case 'block':
      return `blocked <@${change.userId}>`;
    case 'unblock':
      return `unblocked <@${change.userId}>`;
    case 'models':
      return change.modelKeys === null ? 'allowed every model' : `allowed only the models ${change.modelKeys.join(', ')}`;
    case 'max-resolution':
      return change.resolution === null ? 'removed the resolution limit' : `set the highest resolution to ${change.resolution}`;
    case 'max-count':
      return change.count === null ? 'removed the image count limit' : `set the most images per request to ${change.count}`;
    case 'default':
      return change.value === null ? `removed the default ${change.field}` : `set the default ${change.field} to ${change.value}`;
    case 'filter-add':
      return 'added a prompt filter entry';
    case 'filter-remove':
      return 'removed a prompt filter entry';
    case 'spend-cap':
      return change.usd === null ? "removed this server's spending cap" : `set this server's daily spending cap to $${change.usd.toFixed(2)}`;
    case 'log-channel':
      return change.channelId === null ? 'stopped posting the audit log to a channel' : `set the log channel to <#${change.channelId}>`;
  }
}

