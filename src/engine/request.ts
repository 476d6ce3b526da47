/**
 * The platform-neutral request every front end (Discord, Slack, CLI, buttons) builds.
 * Shape validation lives here; validation against the chosen model's capabilities lives in
 * the engine (validateAgainstModel), because it needs the configured catalog.
 */
import { z } from 'zod';
import { ALL_RATIOS, RESOLUTIONS } from './models.ts';
import { MiB } from '../util/units.ts';

export const PLATFORMS = ['discord', 'slack', 'cli'] as const;
export type Platform = (typeof PLATFORMS)[number];

export const MAX_PROMPT_CHARS = 4000;
export const MAX_IMAGES_PER_JOB = 4;
export const MAX_REFERENCE_BYTES = 20 * MiB;

/**
 * A reference image.
 * - `url`: a URL given by a user or a platform CDN (fetched through the SSRF guard, checked by content);
 *   `localPath` may point at a copy already on disk (e.g. a previous result for Upscale).
 * - `file`: bytes already on disk (a Slack private file the adapter downloaded with the bot token).
 */
export const referenceSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('url'),
    url: z.url(),
    name: z.string().optional(),
    localPath: z.string().optional(),
  }),
  z.object({
    kind: z.literal('file'),
    path: z.string().min(1),
    name: z.string().optional(),
  }),
]);
export type ReferenceInput = z.infer<typeof referenceSchema>;

export const requesterSchema = z.object({
  platform: z.enum(PLATFORMS),
  userId: z.string().min(1),
  name: z.string().optional(),
  /** The server (Discord guild id) or workspace (Slack team id) asked in; absent in DMs and the CLI. */
  scope: z.string().optional(),
  /** The channel asked in (the server's channel rules apply to it). */
  channelId: z.string().optional(),
  /** Discord: the member's role ids (the server's role tiers apply to them). */
  roles: z.array(z.string()).optional(),
});
export type Requester = z.infer<typeof requesterSchema>;

/**
 * Where the job's messages live on its platform. Opaque to the engine: each adapter stores what
 * it needs to find its placeholder again after a restart (channel, message id/ts, interaction
 * token and its expiry, thread, ephemeral…). The engine persists it with the job.
 */
export const locationSchema = z.record(z.string(), z.unknown());
export type PlatformLocation = z.infer<typeof locationSchema>;

/** What a job derived from another did (commands/buttons.ts): set by the bot, shown in its texts. */
export const JOB_ACTIONS = ['upscale', 'ratio', 'rerun', 'vary', 'edit', 'remix'] as const;
export type JobAction = (typeof JOB_ACTIONS)[number];

/** What a user is told about a prompt that cannot be used, wherever it is checked. */
export const PROMPT_SENTENCES = {
  empty: 'The prompt is empty: describe the image you want, e.g. "a red fox in the snow --ar 16:9".',
  tooLong: (length: number) => `The prompt is ${length} characters long; the limit is ${MAX_PROMPT_CHARS}. Shorten it.`,
} as const;

export const imagineRequestSchema = z.object({
  prompt: z
    .string()
    .trim()
    .min(1, PROMPT_SENTENCES.empty)
    .max(MAX_PROMPT_CHARS, { error: (issue) => PROMPT_SENTENCES.tooLong(String(issue.input).length) }),
  /** A model key from the catalog (resolved from aliases before this point). */
  model: z.string().min(1),
  ratio: z.enum(ALL_RATIOS),
  resolution: z.enum(RESOLUTIONS),
  count: z.int().min(1).max(MAX_IMAGES_PER_JOB),
  creativity: z.number().min(0).max(1).optional(),
  references: z.array(referenceSchema).default([]),
  requester: requesterSchema,
  location: locationSchema.default({}),
  /** Set for button clicks: the job this one derives from. */
  parent: z
    .object({ jobId: z.string(), action: z.enum(JOB_ACTIONS), imageIndex: z.int().min(0).optional() })
    .optional(),
  /** A short note for the user, e.g. "switched to Nano Banana Pro for 4K". */
  note: z.string().optional(),
  /**
   * True when `model` is the default because the user chose none: the engine may then use another
   * configured model that can take the references, and says so in `note` (docs/architecture.md
   * "The model catalog"). Absent: the model was chosen (or derived from a parent job) and is kept.
   */
  modelFromDefault: z.boolean().optional(),
  /**
   * The fields neither the user's options nor their /settings chose: the server's defaults
   * (docs/governance.md) replace them before the request is checked against the server's limits.
   */
  defaulted: z.array(z.enum(['model', 'ratio', 'resolution'])).optional(),
});
export type ImagineRequest = z.infer<typeof imagineRequestSchema>;
export type ImagineRequestInput = z.input<typeof imagineRequestSchema>;
