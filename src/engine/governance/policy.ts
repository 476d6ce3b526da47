/**
 * The policy: pure functions, no store, no clock. `decide()` is what a server's rules make of one
 * request (called in ONE place, Engine.submit, before references, quota or spend are touched);
 * `applyChange()` is what an admin's change makes of a server's settings. The operator's ceilings
 * (OperatorCeilings, from the environment) always win over a server's settings
 * (docs/governance.md "Two levels of authority").
 */
import { type BotError, UserFacingError } from '../../errors.ts';
import { ValidationError } from '../errors.ts';
import { ALL_RATIOS, findModel, RESOLUTIONS, type ModelSpec, type Ratio, type Resolution } from '../models.ts';
import { MAX_IMAGES_PER_JOB, type ImagineRequest, type Requester } from '../request.ts';
import { filterEntryProblem, MAX_FILTER_ENTRIES, promptMatches } from './filter.ts';
import { UNLIMITED, type AdminChange, type Allowance, type OperatorCeilings, type ServerSettings } from './api.ts';

const rank = (r: Resolution) => RESOLUTIONS.indexOf(r);

/**
 * A member's allowance per day from a server's settings, before grants: their own override, else
 * the highest tier of their roles ("unlimited" highest), else the server's daily units, else the
 * operator's QUOTA_DAILY_UNITS; never above QUOTA_MAX_DAILY_UNITS, and "unlimited" only when the
 * operator allows it (otherwise it means QUOTA_MAX_DAILY_UNITS).
 */
export function baseAllowance(settings: ServerSettings, requester: Requester, ceilings: OperatorCeilings): Allowance {
  let chosen: Allowance | undefined = settings.userLimits[requester.userId];
  if (chosen === undefined) {
    for (const role of requester.roles ?? []) {
      const tier = settings.roleTiers[role];
      if (tier === undefined) continue;
      if (chosen === undefined || tier === UNLIMITED || (chosen !== UNLIMITED && tier > chosen)) chosen = tier;
    }
  }
  chosen ??= settings.dailyUnits ?? ceilings.defaultDailyUnits;
  if (chosen === UNLIMITED) return ceilings.allowUnlimited ? UNLIMITED : ceilings.maxDailyUnits;
  return Math.min(chosen, ceilings.maxDailyUnits);
}

/** baseAllowance plus the units granted for today. */
export function allowanceWithGrants(base: Allowance, granted: number): Allowance {
  return base === UNLIMITED ? UNLIMITED : base + Math.max(0, granted);
}

export interface PolicyInput {
  request: ImagineRequest;
  /** The server's settings; undefined where there is no server (DMs, the CLI): the operator's flat rule. */
  settings: ServerSettings | undefined;
  ceilings: OperatorCeilings;
  /** The configured models. */
  models: readonly ModelSpec[];
  /** QUOTA_EXEMPT_USERS: skip the limits (allowance, models, resolution, count), never blocks, channels or the filter. */
  exempt: boolean;
  /** Units granted to the requester here today. */
  granted: number;
}

export type PolicyDecision =
  | {
      ok: true;
      /** The request with the server's defaults applied. */
      request: ImagineRequest;
      /** What to reserve against: undefined for an exempt user (nothing is reserved). */
      limit: Allowance | undefined;
      /** The models this request may end on (the engine's switch for references stays within them). */
      allowedModels: readonly ModelSpec[];
    }
  | {
      ok: false;
      error: BotError;
      /** True when the prompt filter refused it (the caller records that in the audit log). */
      filtered: boolean;
    };

const refuse = (error: BotError, filtered = false): PolicyDecision => ({ ok: false, error, filtered });

function fits(model: ModelSpec, ratio: Ratio, resolution: Resolution): boolean {
  return model.ratios.includes(ratio) && model.resolutions.includes(resolution);
}

/** What a server's rules make of `request`. Pure: the same input gives the same decision. */
export function decide(input: PolicyInput): PolicyDecision {
  const { settings, ceilings, models, exempt } = input;
  const request: ImagineRequest = structuredClone(input.request);
  const requester = request.requester;
  if (!settings) return { ok: true, request, limit: exempt ? undefined : ceilings.defaultDailyUnits, allowedModels: models };

  if (settings.blocked.includes(requester.userId)) return refuse(new UserFacingError('USER_BLOCKED'));

  const { mode, ids } = settings.channels;
  // An unknown channel under an allow-list is refused: a rule nobody can check must not be skipped.
  if (mode === 'allow' && (requester.channelId === undefined || !ids.includes(requester.channelId)))
    return refuse(new UserFacingError('CHANNEL_NOT_ALLOWED', { channels: ids }));
  if (mode === 'deny' && requester.channelId !== undefined && ids.includes(requester.channelId))
    return refuse(new UserFacingError('CHANNEL_NOT_ALLOWED', { channels: [] }));

  if (promptMatches(request.prompt, settings.filter)) return refuse(new UserFacingError('PROMPT_FILTERED'), true);

  // The server's defaults replace what neither the user's options nor their /settings chose.
  const defaulted = new Set(request.defaulted ?? []);
  const defaults = settings.defaults;
  if (defaulted.has('model') && defaults.model) {
    const model = findModel(models, defaults.model);
    if (model && fits(model, request.ratio, request.resolution)) {
      request.model = model.key;
      // The admins chose it: the engine must not switch away from it for references.
      request.modelFromDefault = false;
    }
  }
  const current = findModel(models, request.model);
  if (defaulted.has('ratio') && defaults.ratio && (!current || current.ratios.includes(defaults.ratio))) request.ratio = defaults.ratio;
  if (defaulted.has('resolution') && defaults.resolution && (!current || current.resolutions.includes(defaults.resolution)))
    request.resolution = defaults.resolution;

  if (exempt) return { ok: true, request, limit: undefined, allowedModels: models };

  const allowedModels = settings.models ? models.filter((m) => settings.models?.includes(m.key)) : models;
  const model = findModel(models, request.model);
  if (model && !allowedModels.includes(model)) {
    // A default the user did not choose moves to an allowed model that can do the request.
    const other = request.modelFromDefault || defaulted.has('model') ? allowedModels.find((m) => fits(m, request.ratio, request.resolution)) : undefined;
    if (!other) return refuse(new UserFacingError('MODEL_NOT_ALLOWED', { label: model.label, allowed: allowedModels.map((m) => m.label) }));
    request.model = other.key;
  }

  if (settings.maxResolution && rank(request.resolution) > rank(settings.maxResolution)) {
    if (!defaulted.has('resolution'))
      return refuse(new UserFacingError('RESOLUTION_NOT_ALLOWED', { resolution: request.resolution, max: settings.maxResolution }));
    request.resolution = settings.maxResolution;
  }
  if (settings.maxCount !== undefined && request.count > settings.maxCount)
    return refuse(new UserFacingError('COUNT_NOT_ALLOWED', { count: request.count, max: settings.maxCount }));

  const limit = allowanceWithGrants(baseAllowance(settings, requester, ceilings), input.granted);
  return { ok: true, request, limit, allowedModels };
}

// ── Admin changes ──────────────────────────────────────────────────────────────────────────────

const invalid = (sentence: string) => new UserFacingError('ADMIN_INVALID', { sentence });

/** Throws the sentence for an allowance beyond the operator's ceilings. */
export function checkAllowance(value: Allowance, what: string, ceilings: OperatorCeilings): void {
  if (value === UNLIMITED) {
    if (!ceilings.allowUnlimited) throw new UserFacingError('UNLIMITED_NOT_ALLOWED', { ceiling: ceilings.maxDailyUnits });
    return;
  }
  if (!Number.isSafeInteger(value) || value < 0) throw invalid(`${what} must be a whole number of units, 0 or more.`);
  if (value > ceilings.maxDailyUnits)
    throw new UserFacingError('ABOVE_CEILING', { what, value: `${value} units`, ceiling: `${ceilings.maxDailyUnits} units` });
}

/** A model choice among the configured models, or UNKNOWN_MODEL listing them. */
export function modelOrThrow(models: readonly ModelSpec[], given: string): ModelSpec {
  const model = findModel(models, given);
  if (!model) throw new UserFacingError('UNKNOWN_MODEL', { given, known: models.map((m) => m.key) });
  return model;
}

/** The highest per-server USD cap the operator allows (SERVER_SPEND_CAP_MAX_USD, never above the global cap). */
function spendCapCeiling(ceilings: OperatorCeilings): number | undefined {
  const caps = [ceilings.maxServerSpendCapUsd, ceilings.globalSpendCapUsd].filter((c): c is number => c !== undefined);
  return caps.length > 0 ? Math.min(...caps) : undefined;
}

const without = (list: readonly string[], item: string) => list.filter((x) => x !== item);
function withoutKey<V>(record: Readonly<Record<string, V>>, key: string): Record<string, V> {
  return Object.fromEntries(Object.entries(record).filter(([k]) => k !== key));
}

/**
 * `settings` with `change` applied, validated against the operator's ceilings and the configured
 * models. Throws a UserFacingError (ABOVE_CEILING, UNLIMITED_NOT_ALLOWED, UNKNOWN_MODEL,
 * ADMIN_INVALID…) and changes nothing when the change is not possible. Pure.
 */
export function applyChange(settings: ServerSettings, change: AdminChange, ceilings: OperatorCeilings, models: readonly ModelSpec[]): ServerSettings {
  const next: ServerSettings = structuredClone(settings);
  switch (change.kind) {
    case 'channels': {
      const ids = [...new Set(change.channelIds)];
      if (change.mode !== 'all' && ids.length === 0)
        throw invalid(`Name at least one channel to ${change.mode === 'allow' ? 'allow' : 'deny'}.`);
      next.channels = { mode: change.mode, ids: change.mode === 'all' ? [] : ids };
      break;
    }
    case 'daily-units':
      if (change.units === null) delete next.dailyUnits;
      else {
        checkAllowance(change.units, "a member's daily units", ceilings);
        next.dailyUnits = change.units;
      }
      break;
    case 'role-tier':
      if (change.allowance === null) next.roleTiers = withoutKey(next.roleTiers, change.roleId);
      else {
        checkAllowance(change.allowance, "a role's daily units", ceilings);
        next.roleTiers[change.roleId] = change.allowance;
      }
      break;
    case 'user-limit':
      if (change.allowance === null) next.userLimits = withoutKey(next.userLimits, change.userId);
      else {
        checkAllowance(change.allowance, "a member's daily units", ceilings);
        next.userLimits[change.userId] = change.allowance;
      }
      break;
    case 'block':
      if (!next.blocked.includes(change.userId)) next.blocked.push(change.userId);
      break;
    case 'unblock':
      next.blocked = without(next.blocked, change.userId);
      break;
    case 'models':
      if (change.modelKeys === null) delete next.models;
      else {
        if (change.modelKeys.length === 0) throw invalid('Allow at least one model (or clear the list to allow every model).');
        next.models = [...new Set(change.modelKeys.map((k) => modelOrThrow(models, k).key))];
      }
      break;
    case 'max-resolution':
      if (change.resolution === null) delete next.maxResolution;
      else {
        if (!RESOLUTIONS.includes(change.resolution)) throw invalid(`"${String(change.resolution)}" is not a resolution. Choose ${RESOLUTIONS.join(', ')}.`);
        next.maxResolution = change.resolution;
      }
      break;
    case 'max-count':
      if (change.count === null) delete next.maxCount;
      else {
        if (!Number.isSafeInteger(change.count) || change.count < 1 || change.count > MAX_IMAGES_PER_JOB)
          throw invalid(`The most images per request must be a whole number from 1 to ${MAX_IMAGES_PER_JOB}.`);
        next.maxCount = change.count;
      }
      break;
    case 'default':
      if (change.value === null) delete next.defaults[change.field];
      else if (change.field === 'model') next.defaults.model = modelOrThrow(models, change.value).key;
      else if (change.field === 'ratio') {
        const ratio = ALL_RATIOS.find((r) => r === change.value);
        if (!ratio) throw invalid(`"${change.value}" is not an aspect ratio. Use a ratio like 1:1, 16:9 or 9:16, or auto.`);
        next.defaults.ratio = ratio;
      } else {
        const resolution = RESOLUTIONS.find((r) => r === change.value?.toUpperCase());
        if (!resolution) throw invalid(`"${change.value}" is not a resolution. Choose ${RESOLUTIONS.join(', ')}.`);
        next.defaults.resolution = resolution;
      }
      break;
    case 'filter-add': {
      const entry = change.pattern.trim();
      const problem = filterEntryProblem(entry);
      if (problem) throw invalid(problem);
      if (!next.filter.includes(entry)) {
        if (next.filter.length >= MAX_FILTER_ENTRIES) throw invalid(`The filter already has ${MAX_FILTER_ENTRIES} entries, the most it can keep. Remove some first.`);
        next.filter.push(entry);
      }
      break;
    }
    case 'filter-remove': {
      const entry = change.pattern.trim();
      if (!next.filter.includes(entry)) throw invalid(`The filter has no entry "${entry}". Show the settings to see its entries.`);
      next.filter = without(next.filter, entry);
      break;
    }
    case 'spend-cap':
      if (change.usd === null) delete next.spendCapUsd;
      else {
        if (!Number.isFinite(change.usd) || change.usd <= 0) throw invalid('A spending cap must be a positive amount of US dollars, e.g. 5 or 2.50.');
        const ceiling = spendCapCeiling(ceilings);
        if (ceiling !== undefined && change.usd > ceiling)
          throw new UserFacingError('ABOVE_CEILING', { what: "this server's daily spending cap", value: `$${change.usd.toFixed(2)}`, ceiling: `$${ceiling.toFixed(2)}` });
        next.spendCapUsd = change.usd;
      }
      break;
    case 'log-channel':
      if (change.channelId === null) delete next.logChannel;
      else next.logChannel = change.channelId;
      break;
  }
  return next;
}

/** Checks a user's /settings against the catalog; returns them with the model stored by key. */
export function validatePreferences<P extends { model?: string | undefined; ratio?: Ratio | undefined; resolution?: Resolution | undefined }>(
  preferences: P,
  models: readonly ModelSpec[],
  defaultModel: ModelSpec,
): P {
  const out = { ...preferences };
  const model = out.model === undefined ? defaultModel : modelOrThrow(models, out.model);
  if (out.model !== undefined) out.model = model.key;
  if (out.ratio !== undefined && !model.ratios.includes(out.ratio))
    throw new ValidationError('ratio', `${model.label} does not support the aspect ratio ${out.ratio}. Choose one of: ${model.ratios.join(', ')}.`);
  if (out.resolution !== undefined && !model.resolutions.includes(out.resolution))
    throw new ValidationError('resolution', `${model.label} cannot make ${out.resolution} images. Choose ${model.resolutions.join(', ')}.`);
  return out;
}
