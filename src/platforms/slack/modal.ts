/**
 * The /imagine modal (opened by `/imagine` with no text, or by the "Imagine with these images"
 * message shortcut): one input per option that Slack offers and some configured model can use,
 * derived like Discord's /imagine from the shared definitions (`resolveOptions` in
 * commands/options.ts: labels aside, the choices, ranges and defaults are theirs), then a
 * file_input for reference images. Where the result goes (channel, thread) and the shortcut's
 * images travel in private_metadata (≤ 3000 chars), so a submission needs no server-side state.
 * Block Kit: https://docs.slack.dev/reference/block-kit/blocks/input-block
 */
import type { types } from '@slack/bolt';
import { z } from 'zod';
import {
  DEFAULT_COUNT,
  DEFAULT_RATIO,
  DEFAULT_RATIO_WITH_REFERENCES,
  DEFAULT_RESOLUTION,
  IMAGINE_DEFINITION,
  IMAGINE_OPTIONS,
  IMAGINE_VALUE_OPTION_NAMES,
  parseFlagValue,
  type ImagineOptions,
  type ImagineValueOptionName,
} from '../../../commands/imagine/index.ts';
import { resolveOptions, type OptionDefinition, type ResolvedOption } from '../../../commands/options.ts';
import { FORM_TEXT_ID, type FormSpec } from '../../../commands/buttons.ts';
import { ValidationError } from '../../engine/errors.ts';
import { PROMPT_SENTENCES } from '../../engine/request.ts';
import type { ModelSpec } from '../../engine/models.ts';
import { REFERENCE_FILETYPES, type SlackFileRef } from './files.ts';
import { clip } from './format.ts';
import { fileRef, inputStateSchema, slackFileSchema, type InputState } from './payloads.ts';
import { sentenceFor } from '../../errors.ts';

export const IMAGINE_MODAL_CALLBACK_ID = 'imagine_modal';
/** The reference images' file_input. Every other input's block_id is its option's name, and so is its element's action_id. */
export const IMAGES_BLOCK = 'images';
export const MAX_PRIVATE_METADATA_CHARS = 3000;
/** file_input accepts at most 10 files; our models take at most 8 references. */
export const MAX_FILE_INPUT_FILES = 10;
/** Block Kit limits: static_select options, plain_text_input max_length. */
const MAX_SELECT_OPTIONS = 100;
const MAX_TEXT_INPUT_CHARS = 3000;

export interface ModalMetadata {
  channel: string;
  threadTs?: string;
  /** Images from the message the shortcut ran on. */
  refs: SlackFileRef[];
}

// `m` (a media type) was written by earlier versions; it is read and ignored.
const metadataSchema = z.object({
  c: z.string().min(1),
  t: z.string().optional(),
  r: z.array(z.object({ i: z.string(), n: z.string().optional(), u: z.string().optional() })).default([]),
});

/** Compact JSON for private_metadata; drops URLs (then names) when the refs would not fit. */
export function encodeMetadata(meta: ModalMetadata): string {
  const base = { c: meta.channel, ...(meta.threadTs ? { t: meta.threadTs } : {}) };
  const attempts = [
    meta.refs.map((r) => ({ i: r.id, ...(r.name ? { n: r.name } : {}), ...(r.url ? { u: r.url } : {}) })),
    meta.refs.map((r) => ({ i: r.id, ...(r.name ? { n: r.name } : {}) })),
    meta.refs.map((r) => ({ i: r.id })),
  ];
  for (const r of attempts) {
    const json = JSON.stringify(r.length ? { ...base, r } : base);
    if (json.length <= MAX_PRIVATE_METADATA_CHARS) return json;
  }
  throw new Error('modal metadata does not fit in private_metadata');
}

export function decodeMetadata(raw: string): ModalMetadata | undefined {
  try {
    const parsed = metadataSchema.safeParse(JSON.parse(raw));
    if (!parsed.success) return undefined;
    const { c, t, r } = parsed.data;
    return {
      channel: c,
      ...(t ? { threadTs: t } : {}),
      refs: r.map((x) => ({ id: x.i, ...(x.n ? { name: x.n } : {}), ...(x.u ? { url: x.u } : {}) })),
    };
  } catch {
    return undefined;
  }
}

/** The label above each input (the definitions' description is the hint below it). */
const LABELS: Readonly<Partial<Record<string, string>>> = {
  prompt: 'Prompt',
  model: 'Model',
  ratio: 'Aspect ratio',
  resolution: 'Resolution',
  count: 'Number of images',
  creativity: 'Creativity',
};
export const labelOf = (name: string) => LABELS[name] ?? name.charAt(0).toUpperCase() + name.slice(1);

/** Hints where the description alone would mislead in a form (the prompt's flags; the ratio's default). */
const HINTS: Readonly<Partial<Record<string, string>>> = {
  prompt: 'Describe the image. Flags such as --ar 16:9 work here too.',
  ratio: `${IMAGINE_OPTIONS.ratio.description}. Default ${DEFAULT_RATIO}, or ${DEFAULT_RATIO_WITH_REFERENCES} (the references' shape) with reference images.`,
};
const PROMPT_PLACEHOLDER = 'a red fox in the snow, watercolor';

export const plain = (text: string) => ({ type: 'plain_text' as const, text, emoji: true });
export const option = (text: string, value: string): types.PlainTextOption => ({ text: plain(clip(text, 75)), value });

/** An option's input element, or undefined for an option a modal input cannot hold. */
function inputElement(o: ResolvedOption, initial: string | undefined): types.InputBlockElement | undefined {
  const range =
    o.type === 'integer' && o.minValue !== undefined && o.maxValue !== undefined && o.maxValue - o.minValue < MAX_SELECT_OPTIONS
      ? Array.from({ length: o.maxValue - o.minValue + 1 }, (_, i) => ({ name: String(o.minValue! + i), value: String(o.minValue! + i) }))
      : undefined;
  const choices = o.choices ?? range;
  if (choices) {
    const options = choices.slice(0, MAX_SELECT_OPTIONS).map((c) => option(c.name, c.value));
    const initialOption = options.find((c) => c.value === initial);
    return { type: 'static_select', action_id: o.name, placeholder: plain('Default'), options, ...(initialOption ? { initial_option: initialOption } : {}) };
  }
  if (o.type === 'string') {
    return {
      type: 'plain_text_input',
      action_id: o.name,
      multiline: true,
      max_length: Math.min(o.maxLength ?? MAX_TEXT_INPUT_CHARS, MAX_TEXT_INPUT_CHARS),
      ...(o.name === 'prompt' ? { placeholder: plain(PROMPT_PLACEHOLDER) } : {}),
      ...(initial ? { initial_value: clip(initial, MAX_TEXT_INPUT_CHARS) } : {}),
    };
  }
  if (o.type === 'integer' || o.type === 'number') {
    return {
      type: 'number_input',
      action_id: o.name,
      is_decimal_allowed: o.type === 'number',
      ...(o.minValue !== undefined ? { min_value: String(o.minValue) } : {}),
      ...(o.maxValue !== undefined ? { max_value: String(o.maxValue) } : {}),
      ...(o.minValue !== undefined && o.maxValue !== undefined ? { placeholder: plain(`${o.minValue} to ${o.maxValue}`) } : {}),
    };
  }
  return undefined;
}

export interface ImagineModalInput {
  models: readonly ModelSpec[];
  defaultModel: ModelSpec;
  meta: ModalMetadata;
  /** Pre-filled prompt (e.g. the shortcut's message text). */
  prompt?: string;
}

/** The modal view for views.open. */
export function imagineModal(input: ImagineModalInput): types.ModalView {
  const { models, meta } = input;
  const initial: Readonly<Partial<Record<string, string>>> = {
    ...(input.prompt ? { prompt: input.prompt } : {}),
    // No model preselected: left at "Default", the engine may pick a model that takes the
    // attached files when the default cannot (docs/slack.md "Reference images").
    resolution: DEFAULT_RESOLUTION,
    count: String(DEFAULT_COUNT),
  };
  const maxRefs = Math.min(MAX_FILE_INPUT_FILES, Math.max(1, ...models.map((m) => m.maxReferences)));
  const blocks: types.KnownBlock[] = [];
  if (meta.refs.length > 0) {
    const names = meta.refs.map((r, i) => r.name ?? `image ${i + 1}`).join(', ');
    blocks.push({
      type: 'context',
      elements: [{ type: 'mrkdwn', text: clip(`🖼️ Using ${meta.refs.length === 1 ? 'the image' : `${meta.refs.length} images`} from the message as references: ${names}`, 3000) }],
    });
  }
  for (const o of resolveOptions(IMAGINE_DEFINITION, models, 'slack')) {
    const element = inputElement(o, initial[o.name]);
    if (!element) continue;
    blocks.push({
      type: 'input',
      block_id: o.name,
      ...(o.required ? {} : { optional: true }),
      label: plain(labelOf(o.name)),
      hint: plain(clip(HINTS[o.name] ?? o.description, 2000)),
      element,
    });
  }
  blocks.push({
    type: 'input',
    block_id: IMAGES_BLOCK,
    optional: true,
    label: plain(meta.refs.length > 0 ? 'More reference images' : 'Reference images'),
    hint: plain(`JPEG, PNG or WEBP, up to ${maxRefs} (how many depends on the model).`),
    element: { type: 'file_input', action_id: IMAGES_BLOCK, filetypes: [...REFERENCE_FILETYPES], max_files: maxRefs },
  });
  return {
    type: 'modal',
    callback_id: IMAGINE_MODAL_CALLBACK_ID,
    title: plain('Imagine'),
    submit: plain('Imagine'),
    close: plain('Cancel'),
    private_metadata: encodeMetadata(meta),
    blocks,
  };
}

/** A view_submission's state values, as Slack sends them: each input's entry is read with inputStateSchema. */
export type ViewStateValues = Record<string, Record<string, unknown>>;

/** The options a Slack modal may hold, whatever the models configured when it was opened. */
const SLACK_VALUE_OPTIONS = IMAGINE_VALUE_OPTION_NAMES.filter((name) => (IMAGINE_OPTIONS[name] as OptionDefinition).platforms?.includes('slack') ?? true);

export interface ModalSubmission {
  prompt: string;
  options: Partial<ImagineOptions>;
  /** Files picked in the file_input, in order. */
  files: SlackFileRef[];
}

/**
 * Reads a submitted modal. Throws a ValidationError (field = the option) for a value that is not
 * acceptable; `modalErrorBlock` maps it to the input to flag.
 */
export function readSubmission(values: ViewStateValues): ModalSubmission {
  // Each input block holds one element: its state is the block's only entry, whatever its action_id
  // (views opened by an older version used "value").
  // An entry of the wrong shape (a value that is not a string…) is that input's error, told under it.
  const get = (block: string): InputState | undefined => {
    const states = values[block];
    const raw = states ? (states[block] ?? Object.values(states)[0]) : undefined;
    if (raw === undefined) return undefined;
    const read = inputStateSchema.safeParse(raw);
    if (!read.success) throw new ValidationError(block === IMAGES_BLOCK ? 'references' : block, sentenceFor('UNREADABLE_REQUEST', {}));
    return read.data;
  };
  const options: Partial<Record<ImagineValueOptionName, unknown>> = {};
  for (const name of SLACK_VALUE_OPTIONS) {
    const state = get(name);
    const raw = (state?.selected_option?.value ?? state?.value ?? '').trim();
    if (raw !== '') options[name] = parseFlagValue(name, raw, labelOf(name));
  }
  const files: SlackFileRef[] = [];
  for (const raw of get(IMAGES_BLOCK)?.files ?? []) {
    const f = slackFileSchema.safeParse(raw);
    if (f.success) files.push(fileRef(f.data));
  }
  const prompt = get('prompt')?.value ?? '';
  if (prompt.trim() === '') throw new ValidationError('prompt', PROMPT_SENTENCES.empty);
  return { prompt, options: options as Partial<ImagineOptions>, files };
}

/** The modal input to flag for an error about `field` (ValidationError.field / ReferenceError). */
export function modalErrorBlock(field: string): string {
  if (field === 'references') return IMAGES_BLOCK;
  return (SLACK_VALUE_OPTIONS as readonly string[]).includes(field) ? field : 'prompt';
}

/**
 * An Edit or Remix form (commands/buttons.ts FormSpec) as a modal view: one multiline text
 * input (block and action id FORM_TEXT_ID). Its callback_id is the button's durable id, so the
 * submission names the job and the image; where the result goes travels in private_metadata.
 */
export function formView(form: FormSpec, meta: Omit<ModalMetadata, 'refs'>): types.ModalView {
  return {
    type: 'modal',
    callback_id: form.customId,
    title: plain(clip(form.title, 24)),
    submit: plain(form.title.startsWith('Edit') ? 'Edit' : 'Imagine'),
    close: plain('Cancel'),
    private_metadata: encodeMetadata({ ...meta, refs: [] }),
    blocks: [
      {
        type: 'input',
        block_id: FORM_TEXT_ID,
        label: plain(form.label),
        element: {
          type: 'plain_text_input',
          action_id: FORM_TEXT_ID,
          multiline: form.multiline,
          max_length: MAX_TEXT_INPUT_CHARS,
          placeholder: plain(form.placeholder),
          ...(form.value !== undefined ? { initial_value: clip(form.value, MAX_TEXT_INPUT_CHARS) } : {}),
        },
      },
    ],
  };
}
