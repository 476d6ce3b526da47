/**
 * /settings on Slack with no text: one private modal (views.open with the command's trigger_id)
 * holding the user's own defaults, prefilled with what they saved. Its inputs are /settings'
 * options that Slack offers (commands/settings.ts, which takes /imagine's choices, ranges and
 * platforms: one source; `private` is Discord's only), each a
 * select with "Not set" first, so a default can be cleared. A submission is the whole set of
 * defaults: it is read as `/settings reset:true <every chosen option>` and goes through the
 * shared command, which validates and saves it (engine.governance.setPreferences).
 * Block Kit: https://docs.slack.dev/reference/block-kit/blocks/input-block
 */
import type { types } from '@slack/bolt';
import { z } from 'zod';
import { parseImagineText } from '../../../commands/imagine/flags.ts';
import { SETTINGS_DEFINITION } from '../../../commands/settings.ts';
import { resolveOptions, type ResolvedOption } from '../../../commands/options.ts';
import type { UserPreferences } from '../../engine/governance/api.ts';
import type { ModelSpec } from '../../engine/models.ts';
import { ValidationError } from '../../engine/errors.ts';
import { sentenceFor } from '../../errors.ts';
import { labelOf, option, plain } from './modal.ts';
import { inputStateSchema } from './payloads.ts';
import type { ViewStateValues } from './modal.ts';

export const SETTINGS_MODAL_CALLBACK_ID = 'imagine_settings';
/** The select value that leaves a default unset (Slack offers no way to clear a static_select). */
export const NOT_SET = 'none';
export const PRIVATE_ON_SLACK = "--private only works on Discord: on Slack the channel sees the images, so it can't be a default here.";
/** The inputs: every /settings option but `reset` (a submission always replaces the whole set). */
const FIELD_NAMES = ['model', 'ratio', 'resolution', 'count', 'private'] as const satisfies readonly (keyof UserPreferences & keyof typeof SETTINGS_DEFINITION.options)[];
type Field = (typeof FIELD_NAMES)[number];

const LABELS: Readonly<Record<Field, string>> = {
  model: labelOf('model'),
  ratio: labelOf('ratio'),
  resolution: labelOf('resolution'),
  count: labelOf('count'),
  private: 'Private by default',
};

/** Where the confirmation goes (the channel /settings was typed in). */
const metadataSchema = z.object({ c: z.string().min(1), t: z.string().optional() });
export interface SettingsMetadata {
  channel: string;
  threadTs?: string;
}
export const encodeSettingsMetadata = (m: SettingsMetadata) => JSON.stringify({ c: m.channel, ...(m.threadTs ? { t: m.threadTs } : {}) });
export function decodeSettingsMetadata(raw: string): SettingsMetadata | undefined {
  try {
    const read = metadataSchema.safeParse(JSON.parse(raw));
    return read.success ? { channel: read.data.c, ...(read.data.t ? { threadTs: read.data.t } : {}) } : undefined;
  } catch {
    return undefined;
  }
}

/** A field's choices: the option's own (models, ratios, sizes), its integer range, or yes/no. */
function choicesOf(o: ResolvedOption): { name: string; value: string }[] {
  if (o.choices) return o.choices.map((c) => ({ name: c.name, value: String(c.value) }));
  if (o.type === 'integer' && o.minValue !== undefined && o.maxValue !== undefined) {
    return Array.from({ length: o.maxValue - o.minValue + 1 }, (_, i) => ({ name: String(o.minValue! + i), value: String(o.minValue! + i) }));
  }
  if (o.type === 'boolean') return [{ name: 'Yes', value: 'true' }, { name: 'No', value: 'false' }];
  return [];
}

const saved = (p: UserPreferences, f: Field): string | undefined => (p[f] === undefined ? undefined : String(p[f]));

/** The modal view for views.open. */
export function settingsModal(input: { models: readonly ModelSpec[]; preferences: UserPreferences; meta: SettingsMetadata }): types.ModalView {
  const byName = new Map(resolveOptions(SETTINGS_DEFINITION, input.models, 'slack').map((o) => [o.name, o]));
  const blocks: types.KnownBlock[] = [];
  for (const f of FIELD_NAMES) {
    const o = byName.get(f);
    if (!o) continue;
    const options = [option('Not set', NOT_SET), ...choicesOf(o).map((c) => option(c.name, c.value))].slice(0, 100);
    const initial = options.find((c) => c.value === (saved(input.preferences, f) ?? NOT_SET));
    blocks.push({
      type: 'input',
      block_id: f,
      optional: true,
      label: plain(LABELS[f]),
      hint: plain(o.description),
      element: { type: 'static_select', action_id: f, options, ...(initial ? { initial_option: initial } : {}) },
    });
  }
  blocks.push({
    type: 'context',
    elements: [{ type: 'mrkdwn', text: "What is not set comes from this workspace's defaults, then the bot's. An option you give /imagine always wins; the workspace's limits still apply." }],
  });
  return {
    type: 'modal',
    callback_id: SETTINGS_MODAL_CALLBACK_ID,
    title: plain('Your /imagine defaults'),
    submit: plain('Save'),
    close: plain('Cancel'),
    private_metadata: encodeSettingsMetadata(input.meta),
    blocks,
  };
}

/**
 * A submission as /settings options: every field chosen (not "Not set"), plus reset, so the
 * saved defaults are exactly what the modal showed. Throws a ValidationError naming the field
 * whose state cannot be read.
 */
export function readSettingsSubmission(values: ViewStateValues): Record<string, unknown> {
  const options: Record<string, unknown> = { reset: true };
  for (const f of FIELD_NAMES) {
    const states = values[f];
    const raw = states ? (states[f] ?? Object.values(states)[0]) : undefined;
    if (raw === undefined) continue;
    const read = inputStateSchema.safeParse(raw);
    if (!read.success) throw new ValidationError(f, sentenceFor('UNREADABLE_REQUEST', {}));
    const value = read.data.selected_option?.value ?? read.data.value ?? '';
    if (value !== '' && value !== NOT_SET) options[f] = value;
  }
  return options;
}

/** The input to flag for an error about `field`; anything else goes under the first one. */
export const settingsErrorBlock = (field: string): string => ((FIELD_NAMES as readonly string[]).includes(field) ? field : FIELD_NAMES[0]);

/**
 * `/settings --model pro --ar 16:9 --private on` (or `reset`) as /settings options: /imagine's
 * flags (commands/imagine/flags.ts), where `--private` also takes on/off here since nothing
 * follows it. Words that are no flag are refused, naming them.
 */
export function parseSettingsText(text: string): Record<string, unknown> {
  const words = text.trim().split(/\s+/u);
  const reset = words.some((w) => /^(--)?reset$/iu.test(w));
  const rest = words
    .filter((w) => !/^(--)?reset$/iu.test(w))
    .join(' ')
    .replace(/(^|\s)(--private)\s+(on|off|yes|no|true|false)(?=\s|$)/giu, '$1$2=$3');
  const parsed = parseImagineText(rest);
  if (parsed.prompt !== '' || parsed.refs.length > 0) {
    throw new ValidationError('flags', `"${parsed.prompt || '--ref'}" is not a setting. Write e.g. /settings --model pro --ar 16:9 --private on, /settings reset, or /settings alone for a form.`);
  }
  // /imagine's private option is Discord's only (a Slack message with files is seen by the
  // channel), so on Slack it is no default either.
  if (parsed.options.private !== undefined) throw new ValidationError('private', PRIVATE_ON_SLACK);
  const other = Object.keys(parsed.options).find((k) => !(FIELD_NAMES as readonly string[]).includes(k));
  if (other) throw new ValidationError(other, `${other} is not one of your defaults. /settings sets: ${FIELD_NAMES.join(', ')}.`);
  return { ...parsed.options, ...(reset ? { reset: true } : {}) };
}
