/**
 * The model catalog: the single source of truth for what each user-facing model choice can do.
 * Validation (engine), Discord's choices, Slack's modal and the flag parser's help are all derived
 * from it. See docs/providers.md. A model's ratios must be ones its provider's API documents
 * (test/unit/engine/models.test.ts checks them against each provider's schema).
 */
import { ConfigError } from '../config.ts';
import { PROVIDERS, RESOLUTIONS, type ProviderName, type Resolution } from '../providers/types.ts';

export { PROVIDERS, RESOLUTIONS, type ProviderName, type Resolution };

/** The eleven ratios both providers accept ("auto" lets the model choose). */
export const COMMON_RATIOS = ['auto', '1:1', '2:3', '3:2', '3:4', '4:3', '4:5', '5:4', '9:16', '16:9', '21:9'] as const;
/** Runbase's nano-banana-2 adds four extreme ratios. */
export const EXTENDED_RATIOS = [...COMMON_RATIOS, '1:4', '1:8', '4:1', '8:1'] as const;
export const ALL_RATIOS = EXTENDED_RATIOS;
export type Ratio = (typeof ALL_RATIOS)[number];

export interface ModelSpec {
  /** Stable key used in commands, custom ids and the store (never rename: buttons carry it). */
  readonly key: string;
  /** What users see. */
  readonly label: string;
  readonly provider: ProviderName;
  /** The provider's own model id. */
  readonly providerModel: string;
  readonly ratios: readonly Ratio[];
  readonly resolutions: readonly Resolution[];
  /** Maximum reference images per request. */
  readonly maxReferences: number;
  /** Whether a creativity (temperature 0–1) option exists. */
  readonly creativity: boolean;
  /** Short names accepted in `--model` (first configured model wins when two share an alias). */
  readonly aliases: readonly string[];
  /**
   * Price per image in USD by resolution: the first spend reservation's estimate, until the
   * provider reports what it charged (governance/prices.ts learns that and uses it instead).
   * Only RunBlob `standard` has a documented price (docs/providers.md); the others are list
   * prices kept on the high side, so a cap is not overshot before the first report arrives.
   */
  readonly estimatedUsd: Readonly<Partial<Record<Resolution, number>>>;
}

export const MODEL_CATALOG: readonly ModelSpec[] = [
  {
    key: 'runbase-pro',
    label: 'Nano Banana Pro (Runbase)',
    provider: 'runbase',
    providerModel: 'google/nano-banana-pro',
    ratios: COMMON_RATIOS,
    resolutions: RESOLUTIONS,
    // Not documented for -pro; Gemini 3 Pro image takes more, 8 keeps requests modest.
    maxReferences: 8,
    creativity: false,
    aliases: ['pro', 'nano-banana-pro'],
    estimatedUsd: { '1K': 0.13, '2K': 0.13, '4K': 0.24 },
  },
  {
    key: 'runbase-2',
    label: 'Nano Banana 2 (Runbase)',
    provider: 'runbase',
    providerModel: 'google/nano-banana-2',
    ratios: EXTENDED_RATIOS,
    resolutions: RESOLUTIONS,
    maxReferences: 8,
    creativity: false,
    aliases: ['2', 'v2', 'nb2', 'nano-banana-2'],
    estimatedUsd: { '1K': 0.045, '2K': 0.09, '4K': 0.15 },
  },
  {
    key: 'runblob-standard',
    label: 'Nano Banana (RunBlob)',
    provider: 'runblob',
    providerModel: 'standard',
    ratios: COMMON_RATIOS,
    resolutions: ['1K'],
    maxReferences: 4,
    creativity: true,
    aliases: ['standard', 'nano-banana', 'flash', 'nb'],
    // Documented: the create answer's `"price": "0.0200"` (docs/providers.md "Create a task",
    // https://docs.runblob.io/api-reference/nanobanana/generate). Reserving more left a cap idle (issue 10).
    estimatedUsd: { '1K': 0.02 },
  },
  {
    key: 'runblob-pro',
    label: 'Nano Banana Pro (RunBlob)',
    provider: 'runblob',
    providerModel: 'pro',
    ratios: COMMON_RATIOS,
    resolutions: RESOLUTIONS,
    maxReferences: 8,
    creativity: true,
    aliases: ['pro', 'nano-banana-pro'],
    estimatedUsd: { '1K': 0.13, '2K': 0.13, '4K': 0.24 },
  },
  {
    key: 'runblob-2',
    label: 'Nano Banana 2 (RunBlob)',
    provider: 'runblob',
    providerModel: 'v2',
    ratios: COMMON_RATIOS,
    resolutions: RESOLUTIONS,
    maxReferences: 8,
    creativity: true,
    aliases: ['2', 'v2', 'nb2', 'nano-banana-2'],
    estimatedUsd: { '1K': 0.045, '2K': 0.09, '4K': 0.15 },
  },
];

/** The models whose provider has an API key, in catalog order. */
export function configuredModels(configured: ReadonlySet<ProviderName>): ModelSpec[] {
  return MODEL_CATALOG.filter((m) => configured.has(m.provider));
}

/**
 * Resolves a user's model choice (a key, an alias or a label, case-insensitive) among the
 * configured models. Returns undefined when nothing matches.
 */
export function findModel(models: readonly ModelSpec[], choice: string): ModelSpec | undefined {
  const wanted = choice.trim().toLowerCase();
  return (
    models.find((m) => m.key === wanted) ??
    models.find((m) => m.label.toLowerCase() === wanted) ??
    models.find((m) => m.aliases.includes(wanted))
  );
}

/**
 * The models of the configured providers and the default one (`defaultChoice`, DEFAULT_MODEL, or
 * the first). ConfigError when no provider is configured or the default is not among them.
 */
export function chooseModels(configured: ReadonlySet<ProviderName>, defaultChoice: string | undefined): { models: ModelSpec[]; defaultModel: ModelSpec } {
  const models = configuredModels(configured);
  const first = models[0];
  if (!first) throw new ConfigError(['RUNBASE_API_KEY / RUNBLOB_API_KEY: set at least one image provider key']);
  if (!defaultChoice) return { models, defaultModel: first };
  const chosen = findModel(models, defaultChoice);
  if (!chosen) {
    throw new ConfigError([`DEFAULT_MODEL: "${defaultChoice}" is not one of the configured models (${models.map((m) => m.key).join(', ')})`]);
  }
  return { models, defaultModel: chosen };
}
