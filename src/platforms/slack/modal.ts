/**
 * The /imagine modal (opened by `/imagine` with no text, or by the "Imagine with these images"
 * message shortcut): prompt, model, ratio, resolution, count, creativity and a file_input for
 * reference images. Fields, labels and choices come from the shared option definitions
 * (commands/options.ts). Where the result goes (channel, thread) and the shortcut's images travel
 * in private_metadata (≤ 3000 chars), so a submission needs no server-side state.
 */
import type { types } from '@slack/bolt';
import { z } from 'zod';
import { parseFlagValue } from '../../../commands/imagine/flags.ts';
import { IMAGINE_OPTIONS, type ImagineOptions } from '../../../commands/imagine/definition.ts';
import { modelChoices, ratioChoices } from '../../../commands/options.ts';
import { ValidationError } from '../../engine/errors.ts';
import { RESOLUTIONS, type ModelSpec } from '../../engine/models.ts';
import { MAX_IMAGES_PER_JOB } from '../../engine/request.ts';
import { clip } from './format.ts';

export const IMAGINE_MODAL_CALLBACK_ID = 'imagine_modal';
/** Each input's block_id, also its element's action_id (unique in the view, as strict readers want). */
export const MODAL_BLOCKS = {
  prompt: 'prompt',
  model: 'model',
  ratio: 'ratio',
  resolution: 'resolution',
  count: 'count',
  creativity: 'creativity',
  images: 'images',
} as const;
export const MAX_PRIVATE_METADATA_CHARS = 3000;
/** file_input accepts at most 10 files; our models take at most 8 references. */
export const MAX_FILE_INPUT_FILES = 10;
/** What file_input offers (the engine checks the bytes anyway). */
export const REFERENCE_FILETYPES = ['jpg', 'jpeg', 'png', 'webp'];

/** A Slack file to use as a reference: downloaded later with the bot token. */
export interface SlackFileRef {
  id: string;
  name?: string;
  /** url_private (absent when it did not fit in private_metadata: fetched with files.info). */
  url?: string;
  mimetype?: string;
}

export interface ModalMetadata {
  channel: string;
  threadTs?: string;
  /** Images from the message the shortcut ran on. */
  refs: SlackFileRef[];
}

const metadataSchema = z.object({
  c: z.string().min(1),
  t: z.string().optional(),
  r: z.array(z.object({ i: z.string(), n: z.string().optional(), u: z.string().optional(), m: z.string().optional() })).default([]),
});

/** Compact JSON for private_metadata; drops URLs (then names) when the refs would not fit. */
export function encodeMetadata(meta: ModalMetadata): string {
  const base = { c: meta.channel, ...(meta.threadTs ? { t: meta.threadTs } : {}) };
  const attempts = [
    meta.refs.map((r) => ({ i: r.id, ...(r.name ? { n: r.name } : {}), ...(r.url ? { u: r.url } : {}), ...(r.mimetype ? { m: r.mimetype } : {}) })),
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
      refs: r.map((x) => ({ id: x.i, ...(x.n ? { name: x.n } : {}), ...(x.u ? { url: x.u } : {}), ...(x.m ? { mimetype: x.m } : {}) })),
    };
  } catch {
    return undefined;
  }
}

const plain = (text: string) => ({ type: 'plain_text' as const, text, emoji: true });
const option = (text: string, value: string): types.PlainTextOption => ({ text: plain(clip(text, 75)), value });

function select(blockId: string, label: string, hint: string, options: types.PlainTextOption[], initial?: string): types.InputBlock {
  const initialOption = initial !== undefined ? options.find((o) => o.value === initial) : undefined;
  return {
    type: 'input',
    block_id: blockId,
    optional: true,
    label: plain(label),
    hint: plain(clip(hint, 2000)),
    element: {
      type: 'static_select',
      action_id: blockId,
      placeholder: plain('Default'),
      options,
      ...(initialOption ? { initial_option: initialOption } : {}),
    },
  };
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
  const { models, defaultModel, meta } = input;
  const maxRefs = Math.min(MAX_FILE_INPUT_FILES, Math.max(1, ...models.map((m) => m.maxReferences)));
  const blocks: types.KnownBlock[] = [];
  if (meta.refs.length > 0) {
    const names = meta.refs.map((r, i) => r.name ?? `image ${i + 1}`).join(', ');
    blocks.push({
      type: 'context',
      elements: [{ type: 'mrkdwn', text: clip(`🖼️ Using ${meta.refs.length === 1 ? 'the image' : `${meta.refs.length} images`} from the message as references: ${names}`, 3000) }],
    });
  }
  blocks.push({
    type: 'input',
    block_id: MODAL_BLOCKS.prompt,
    label: plain('Prompt'),
    hint: plain('Describe the image. Flags such as --ar 16:9 work here too.'),
    element: {
      type: 'plain_text_input',
      action_id: MODAL_BLOCKS.prompt,
      multiline: true,
      max_length: IMAGINE_OPTIONS.prompt.maxLength > 3000 ? 3000 : IMAGINE_OPTIONS.prompt.maxLength,
      placeholder: plain('a red fox in the snow, watercolor'),
      ...(input.prompt ? { initial_value: clip(input.prompt, 3000) } : {}),
    },
  });
  blocks.push(
    select(MODAL_BLOCKS.model, 'Model', IMAGINE_OPTIONS.model.description, modelChoices(models).map((c) => option(c.name, c.value)), defaultModel.key),
  );
  blocks.push(
    select(
      MODAL_BLOCKS.ratio,
      'Aspect ratio',
      `${IMAGINE_OPTIONS.ratio.description}. Default 1:1, or auto (the references' shape) with reference images.`,
      ratioChoices().map((c) => option(c.name, c.value)),
    ),
  );
  blocks.push(select(MODAL_BLOCKS.resolution, 'Resolution', IMAGINE_OPTIONS.resolution.description, RESOLUTIONS.map((r) => option(r, r)), '1K'));
  blocks.push(
    select(
      MODAL_BLOCKS.count,
      'Number of images',
      IMAGINE_OPTIONS.count.description,
      Array.from({ length: MAX_IMAGES_PER_JOB }, (_, i) => option(String(i + 1), String(i + 1))),
      '1',
    ),
  );
  if (models.some((m) => m.creativity)) {
    blocks.push({
      type: 'input',
      block_id: MODAL_BLOCKS.creativity,
      optional: true,
      label: plain('Creativity'),
      hint: plain(IMAGINE_OPTIONS.creativity.description),
      element: { type: 'number_input', action_id: MODAL_BLOCKS.creativity, is_decimal_allowed: true, min_value: '0', max_value: '1', placeholder: plain('0 to 1') },
    });
  }
  blocks.push({
    type: 'input',
    block_id: MODAL_BLOCKS.images,
    optional: true,
    label: plain(meta.refs.length > 0 ? 'More reference images' : 'Reference images'),
    hint: plain(`JPEG, PNG or WEBP, up to ${maxRefs} (how many depends on the model).`),
    element: { type: 'file_input', action_id: MODAL_BLOCKS.images, filetypes: REFERENCE_FILETYPES, max_files: maxRefs },
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

/** A view_submission's state values, as Slack sends them. */
export type ViewStateValues = Record<string, Record<string, { type?: string; value?: string | null; selected_option?: { value: string } | null; files?: unknown[] }>>;

const uploadedFileSchema = z.object({
  id: z.string(),
  name: z.string().optional(),
  mimetype: z.string().optional(),
  url_private: z.string().optional(),
  url_private_download: z.string().optional(),
});

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
  const get = (block: string) => {
    const states = values[block];
    return states ? (states[block] ?? Object.values(states)[0]) : undefined;
  };
  const selected = (block: string) => get(block)?.selected_option?.value ?? undefined;
  const options: Partial<ImagineOptions> = {};
  const model = selected(MODAL_BLOCKS.model);
  if (model) options.model = model;
  const ratio = selected(MODAL_BLOCKS.ratio);
  if (ratio) options.ratio = parseFlagValue('ratio', ratio, 'Aspect ratio');
  const resolution = selected(MODAL_BLOCKS.resolution);
  if (resolution) options.resolution = parseFlagValue('resolution', resolution, 'Resolution');
  const count = selected(MODAL_BLOCKS.count);
  if (count) options.count = parseFlagValue('count', count, 'Number of images');
  const creativity = get(MODAL_BLOCKS.creativity)?.value;
  if (creativity !== undefined && creativity !== null && creativity.trim() !== '')
    options.creativity = parseFlagValue('creativity', creativity.trim(), 'Creativity');
  const files: SlackFileRef[] = [];
  for (const raw of get(MODAL_BLOCKS.images)?.files ?? []) {
    const f = uploadedFileSchema.safeParse(raw);
    if (!f.success) continue;
    const url = f.data.url_private ?? f.data.url_private_download;
    files.push({ id: f.data.id, ...(f.data.name ? { name: f.data.name } : {}), ...(url ? { url } : {}), ...(f.data.mimetype ? { mimetype: f.data.mimetype } : {}) });
  }
  const prompt = get(MODAL_BLOCKS.prompt)?.value ?? '';
  if (prompt.trim() === '') throw new ValidationError('prompt', 'The prompt is empty: describe the image you want.');
  return { prompt, options, files };
}

/** The modal input to flag for an error about `field` (ValidationError.field / ReferenceError). */
export function modalErrorBlock(field: string): string {
  switch (field) {
    case 'model':
      return MODAL_BLOCKS.model;
    case 'ratio':
      return MODAL_BLOCKS.ratio;
    case 'resolution':
      return MODAL_BLOCKS.resolution;
    case 'count':
      return MODAL_BLOCKS.count;
    case 'creativity':
      return MODAL_BLOCKS.creativity;
    case 'references':
      return MODAL_BLOCKS.images;
    default:
      return MODAL_BLOCKS.prompt;
  }
}
