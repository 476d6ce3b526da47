/**
 * Durable component ids: a button or select carries everything needed to act on a click (the
 * action, the job id, the image index), so it keeps working for weeks and across restarts with
 * no in-memory state (docs/architecture.md "Buttons are durable"). Used as Discord's `custom_id` and Slack's
 * `action_id` (and button `value`).
 *
 * Format: `imagine:<action>:<jobId>[:<index>]`, index 0-based (the JobTask index; labels show
 * U1…U4). The ratio select's id names the image; the chosen option's value is the ratio. The
 * `imagine:` prefix doubles as the format version: a future incompatible format takes a new
 * prefix (e.g. `imagine2:`) and this decoder keeps reading the old one, so old buttons live on.
 */
import { ALL_RATIOS, type Ratio } from '../src/engine/models.ts';
import { MAX_IMAGES_PER_JOB } from '../src/engine/request.ts';

export const CUSTOM_ID_PREFIX = 'imagine';
/** Discord's custom_id limit; Slack's action_id allows 255, so Discord's is the binding one. */
export const MAX_CUSTOM_ID_CHARS = 100;
/** Job ids must not contain the separator; the engine's ids (uuid-like) fit easily. */
const JOB_ID_PATTERN = /^[A-Za-z0-9_-]{1,80}$/;

export const COMPONENT_ACTIONS = ['upscale', 'ratio', 'rerun', 'delete', 'cancel', 'vary', 'edit', 'remix'] as const;
export type ComponentAction = (typeof COMPONENT_ACTIONS)[number];

export type ActionRef =
  | { action: 'upscale'; jobId: string; index: number }
  | { action: 'ratio'; jobId: string; index: number; ratio?: Ratio }
  | { action: 'rerun'; jobId: string }
  | { action: 'delete'; jobId: string }
  | { action: 'cancel'; jobId: string }
  // Vary: that image as the reference, same prompt. Edit and Remix open a form first: the form
  // (Discord modal, Slack view) carries the same id, so its submission is read the same way.
  | { action: 'vary'; jobId: string; index: number }
  | { action: 'edit'; jobId: string; index: number }
  | { action: 'remix'; jobId: string };

/** What encodeAction accepts: the brief's loose shape; index is required for upscale and ratio. */
export interface ActionInput {
  action: ComponentAction;
  jobId: string;
  index?: number;
  ratio?: Ratio;
}

const needsIndex = (action: ComponentAction) => action === 'upscale' || action === 'ratio' || action === 'vary' || action === 'edit';

/**
 * Encodes a click target. Throws (a programming error, never a user one) for a job id with a
 * separator, a missing or out-of-range index, or an id over 100 characters.
 */
export function encodeAction(ref: ActionInput): string {
  if (!JOB_ID_PATTERN.test(ref.jobId)) throw new Error(`job id ${JSON.stringify(ref.jobId)} cannot go in a custom id`);
  const parts: string[] = [CUSTOM_ID_PREFIX, ref.action, ref.jobId];
  if (needsIndex(ref.action)) {
    const index = ref.index;
    if (index === undefined || !Number.isInteger(index) || index < 0 || index >= MAX_IMAGES_PER_JOB) {
      throw new Error(`${ref.action} needs an image index from 0 to ${MAX_IMAGES_PER_JOB - 1}, got ${String(index)}`);
    }
    parts.push(String(index));
  }
  const id = parts.join(':');
  if (id.length > MAX_CUSTOM_ID_CHARS) throw new Error(`custom id is ${id.length} characters, over ${MAX_CUSTOM_ID_CHARS}`);
  return id;
}

/**
 * Reads a click target back, or undefined for an id that is not ours (another feature's button,
 * a malformed or tampered id). For the ratio select, pass the chosen option's value as
 * `selectedValue`: it becomes `ratio` when it is a known ratio.
 */
export function decodeAction(id: string, selectedValue?: string): ActionRef | undefined {
  const parts = id.split(':');
  const [prefix, action, jobId, indexText, ...rest] = parts;
  if (prefix !== CUSTOM_ID_PREFIX || jobId === undefined || !JOB_ID_PATTERN.test(jobId) || rest.length > 0) {
    return undefined;
  }
  switch (action) {
    case 'rerun':
    case 'delete':
    case 'cancel':
    case 'remix':
      return indexText === undefined ? { action, jobId } : undefined;
    case 'upscale':
    case 'vary':
    case 'edit':
    case 'ratio': {
      if (indexText === undefined || !/^\d$/.test(indexText)) return undefined;
      const index = Number(indexText);
      if (index >= MAX_IMAGES_PER_JOB) return undefined;
      if (action !== 'ratio') return { action, jobId, index };
      const ratio = ALL_RATIOS.find((r) => r === selectedValue);
      return ratio ? { action, jobId, index, ratio } : { action, jobId, index };
    }
    default:
      return undefined;
  }
}
