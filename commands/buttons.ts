/**
 * What the buttons under a result do, platform-neutral (docs/architecture.md "Buttons are durable"). Every
 * click is a new job charged to the clicker, replying to its parent:
 * - Rerun: same prompt, options and references, new images.
 * - Upscale (per image): that image as the only reference, same prompt, 4K, one image; switches
 *   to a 4K-capable model when the parent's cannot, and says so in `note`.
 * - Change ratio (per image, a select): that image as the only reference, the new ratio, one image.
 * - Vary (per image): that image as the only reference, the same prompt and options, for close
 *   variations.
 * - Edit (per image, through a form): that image as the only reference and the instruction typed
 *   in the form ("make the sky purple") as the prompt, one image. Replying to a result with a
 *   mention of the bot does the same.
 * - Remix (through a form prefilled with the prompt and its flags, remixText): the edited text
 *   read as /imagine reads it, with the parent's references.
 * Vary and Edit keep the parent's model when it takes references, else switch to one that does
 * and say so in `note`.
 * `componentsFor` says which of these to show; the adapters render the data.
 */
import { UserFacingError } from '../src/errors.ts';
import type { EngineApi } from '../src/engine/api.ts';
import { isTerminalJobState } from '../src/engine/job.ts';
import type { JobRecord, JobTask } from '../src/engine/job.ts';
import { MODEL_CATALOG, type ModelSpec, type Ratio } from '../src/engine/models.ts';
import type {
  ImagineRequestInput,
  JobAction,
  PlatformLocation,
  ReferenceInput,
  Requester,
} from '../src/engine/request.ts';
import { encodeAction } from './custom-id.ts';
import { IMAGINE_OPTIONS } from './imagine/definition.ts';
import { parseImagineInput } from './imagine/request.ts';
import { DISCORD_MAX_CHOICES, RATIO_LABELS } from './options.ts';
import { modelLabel } from './render.ts';

export interface ActionOptions {
  /** The image (JobTask.index, 0-based): required for upscale and ratio. */
  index?: number;
  /** The chosen ratio: required for ratio. */
  ratio?: Ratio;
  /** What the form said: the instruction for edit, the prompt with its flags for remix. */
  text?: string;
  /** Who clicked: the new job is charged to them. */
  clicker: Requester;
  /** Where the new job's messages go (a reply to the parent's message). */
  location: PlatformLocation;
  /** The configured models. */
  models: readonly ModelSpec[];
}

const imageName = (index: number) => `image ${index + 1}`;

/** The parent's model among the configured ones, or a refusal saying it is gone. */
function configuredModel(models: readonly ModelSpec[], key: string): ModelSpec {
  const model = models.find((m) => m.key === key);
  if (!model) {
    throw new UserFacingError('MODEL_GONE', { label: modelLabel(key) });
  }
  return model;
}

/**
 * The model an upscale of `originalKey` uses: the original when it is configured and makes 4K,
 * else a configured 4K model of the same provider, else any configured 4K model.
 */
export function upscaleModel(models: readonly ModelSpec[], originalKey: string): ModelSpec | undefined {
  const original = models.find((m) => m.key === originalKey);
  if (original?.resolutions.includes('4K')) return original;
  const provider = original?.provider ?? MODEL_CATALOG.find((m) => m.key === originalKey)?.provider;
  return (
    models.find((m) => m.provider === provider && m.resolutions.includes('4K')) ??
    models.find((m) => m.resolutions.includes('4K'))
  );
}

/**
 * The model an edit or a variation of `originalKey` uses: the original when it takes reference
 * images, else a configured one that does, of the same provider first. Undefined when none does.
 */
export function referenceModel(models: readonly ModelSpec[], originalKey: string): ModelSpec | undefined {
  const original = configuredModel(models, originalKey);
  if (original.maxReferences > 0) return original;
  return (
    models.find((m) => m.provider === original.provider && m.maxReferences > 0) ?? models.find((m) => m.maxReferences > 0)
  );
}

/** referenceModel, or the refusal saying no configured model takes a reference image. */
function modelForReference(models: readonly ModelSpec[], originalKey: string): { model: ModelSpec; note?: string } {
  const model = referenceModel(models, originalKey);
  if (!model) throw new UserFacingError('NO_REFERENCE_MODEL');
  if (model.key === originalKey) return { model };
  return { model, note: `${modelLabel(originalKey)} can't start from an image, so this uses ${model.label}.` };
}

/**
 * The Remix form's text: the prompt followed by the flags that reproduce the job (each flag's
 * main name from IMAGINE_OPTIONS), so reading it back as /imagine does gives the same request.
 * References are not in the text: a remix keeps the parent's.
 */
export function remixText(request: ImagineRequestInput): string {
  const flag = (name: 'model' | 'ratio' | 'resolution' | 'count' | 'creativity', value: string | number) =>
    `--${IMAGINE_OPTIONS[name].flags[0]} ${String(value)}`;
  return [
    request.prompt,
    flag('model', request.model),
    flag('ratio', request.ratio),
    flag('resolution', request.resolution),
    flag('count', request.count),
    ...(request.creativity !== undefined ? [flag('creativity', request.creativity)] : []),
  ].join(' ');
}

function succeededTask(parent: JobRecord, index: number | undefined, verb: string): JobTask {
  if (index === undefined) throw new UserFacingError('IMAGE_NOT_CHOSEN', { verb });
  const task = parent.tasks.find((t) => t.index === index);
  if (!task || task.status !== 'succeeded' || (!task.image && !task.outputUrl)) {
    throw new UserFacingError('IMAGE_NOT_MADE', { n: index + 1, verb });
  }
  return task;
}

/** A finished image as a reference: its provider URL (with the local copy to skip a download), or the local file. */
export function referenceForImage(task: JobTask): ReferenceInput {
  const url = task.image?.sourceUrl ?? task.outputUrl;
  const localPath = task.image?.path;
  if (url) return { kind: 'url', url, ...(localPath !== undefined && { localPath }) };
  if (localPath !== undefined) return { kind: 'file', path: localPath };
  throw new UserFacingError('IMAGE_GONE', { n: task.index + 1 });
}

/**
 * The engine request for a click on `parent`'s button. Throws a UserFacingError with a sentence for
 * the clicker when the action cannot be done (image not made, model gone, ratio not offered by
 * the model, no configured model makes 4K).
 */
export function requestForAction(parent: JobRecord, action: JobAction, opts: ActionOptions): ImagineRequestInput {
  const base = parent.request;
  const common = {
    prompt: base.prompt,
    requester: opts.clicker,
    location: opts.location,
  };

  switch (action) {
    case 'rerun': {
      const model = configuredModel(opts.models, base.model);
      return {
        ...common,
        model: model.key,
        ratio: base.ratio,
        resolution: base.resolution,
        count: base.count,
        ...(base.creativity !== undefined && { creativity: base.creativity }),
        references: base.references,
        parent: { jobId: parent.id, action },
      };
    }
    case 'upscale': {
      const task = succeededTask(parent, opts.index, 'upscale');
      const model = upscaleModel(opts.models, base.model);
      if (!model) {
        throw new UserFacingError('NO_4K_MODEL');
      }
      const switched = model.key !== base.model;
      return {
        ...common,
        model: model.key,
        // Keep the image's shape; a ratio the new model lacks falls back to following the reference.
        ratio: model.ratios.includes(base.ratio) ? base.ratio : 'auto',
        resolution: '4K',
        count: 1,
        ...(base.creativity !== undefined && model.creativity && { creativity: base.creativity }),
        references: [referenceForImage(task)],
        parent: { jobId: parent.id, action, imageIndex: task.index },
        ...(switched && {
          note: `${modelLabel(base.model)} can't make 4K images, so this upscale uses ${model.label}.`,
        }),
      };
    }
    case 'ratio': {
      const task = succeededTask(parent, opts.index, 'change its ratio');
      const model = configuredModel(opts.models, base.model);
      const ratio = opts.ratio;
      if (ratio === undefined || !model.ratios.includes(ratio)) {
        throw new UserFacingError('RATIO_NOT_OFFERED', { label: model.label, ratio, ratios: model.ratios });
      }
      return {
        ...common,
        model: model.key,
        ratio,
        resolution: base.resolution,
        count: 1,
        ...(base.creativity !== undefined && { creativity: base.creativity }),
        references: [referenceForImage(task)],
        parent: { jobId: parent.id, action, imageIndex: task.index },
      };
    }
    case 'vary':
    case 'edit': {
      const task = succeededTask(parent, opts.index, action);
      const { model, note } = modelForReference(opts.models, base.model);
      const edit = action === 'edit';
      return {
        ...common,
        // Edit: the instruction is the prompt (the engine refuses an empty one with its sentence).
        prompt: edit ? (opts.text ?? '').trim() : base.prompt,
        model: model.key,
        ratio: model.ratios.includes(base.ratio) ? base.ratio : 'auto',
        resolution: model.resolutions.includes(base.resolution) ? base.resolution : '1K',
        count: edit ? 1 : base.count,
        ...(base.creativity !== undefined && model.creativity && { creativity: base.creativity }),
        references: [referenceForImage(task)],
        parent: { jobId: parent.id, action, imageIndex: task.index },
        ...(note !== undefined && { note }),
      };
    }
    case 'remix': {
      // Read as /imagine reads a prompt (flags, defaults, the model by name), keeping the parent's references.
      const { request } = parseImagineInput(
        { prompt: opts.text ?? '', options: {}, refs: [...(base.references ?? [])], requester: opts.clicker, location: opts.location },
        opts.models,
        configuredModel(opts.models, base.model),
      );
      return { ...request, parent: { jobId: parent.id, action } };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Which components a finished job shows.

export type ButtonStyle = 'primary' | 'secondary' | 'danger';

export interface ButtonSpec {
  /** Discord custom_id / Slack action_id (and value). */
  readonly customId: string;
  /** Text without the emoji ("U2", "Upscale 4K", "Rerun", "Delete"). */
  readonly label: string;
  readonly emoji: string;
  readonly style: ButtonStyle;
  /** The image the button acts on (upscale, vary, edit). */
  readonly index?: number;
  /** The label where there is room (Slack): "Upscale 4K · image 2". */
  readonly title: string;
}

export interface RatioSelectSpec {
  readonly customId: string;
  /** The image the select acts on. */
  readonly index: number;
  /** "Change ratio…" or, with several images, "Change ratio of image 2…". */
  readonly placeholder: string;
  /** value = the ratio (what decodeAction's selectedValue receives). At most 25 (Discord's cap). */
  readonly options: readonly { readonly label: string; readonly value: Ratio }[];
}

export interface JobComponents {
  /** One per successful image; empty when no configured model makes 4K or the job is already 4K. */
  readonly upscale: readonly ButtonSpec[];
  readonly rerun?: ButtonSpec;
  /** Adapters enforce who may delete (the requester; on Discord also members who can manage messages). */
  readonly delete: ButtonSpec;
  /** One per successful image, when the job's model is still configured. */
  readonly ratioSelects: readonly RatioSelectSpec[];
  /** One per successful image, when some configured model takes a reference image. */
  readonly vary: readonly ButtonSpec[];
  /** One per successful image (opens a form), same condition as vary. */
  readonly edit: readonly ButtonSpec[];
  /** Opens the form prefilled with the prompt and its flags; shown with Rerun. */
  readonly remix?: ButtonSpec;
}

/**
 * The components under a finished job. A succeeded job gets Upscale per image (hidden when no
 * configured model makes 4K, or when the images already are 4K), Rerun, a ratio select per image
 * and Delete; a failed job gets Rerun ("Try again") and Delete. Rerun and the selects are left
 * out when the job's model is no longer configured (their click could only fail).
 */
export function componentsFor(job: JobRecord, models: readonly ModelSpec[]): JobComponents {
  const model = models.find((m) => m.key === job.request.model);
  const deleteButton: ButtonSpec = {
    customId: encodeAction({ action: 'delete', jobId: job.id }),
    label: 'Delete',
    title: 'Delete',
    emoji: '🗑️',
    style: 'danger',
  };
  const made = job.state === 'succeeded' ? job.tasks.filter((t) => t.status === 'succeeded' && (t.image ?? t.outputUrl)) : [];
  const rerun: ButtonSpec | undefined = model && {
    customId: encodeAction({ action: 'rerun', jobId: job.id }),
    label: made.length > 0 ? 'Rerun' : 'Try again',
    title: made.length > 0 ? 'Rerun' : 'Try again',
    emoji: '🔄',
    style: 'secondary',
  };
  const remix: ButtonSpec | undefined = model && {
    customId: encodeAction({ action: 'remix', jobId: job.id }),
    label: 'Remix',
    title: 'Remix',
    emoji: '📝',
    style: 'secondary',
  };

  const canUpscale = job.request.resolution !== '4K' && upscaleModel(models, job.request.model) !== undefined;
  const several = made.length > 1;
  const upscale: ButtonSpec[] = canUpscale
    ? made.map((t) => ({
        customId: encodeAction({ action: 'upscale', jobId: job.id, index: t.index }),
        label: several ? `U${t.index + 1}` : 'Upscale 4K',
        title: several ? `Upscale 4K · ${imageName(t.index)}` : 'Upscale 4K',
        emoji: '⬆️',
        style: 'primary',
        index: t.index,
      }))
    : [];

  // A model gone from the configuration makes referenceModel throw: no Vary or Edit then.
  const canReference = model !== undefined && referenceModel(models, model.key) !== undefined;
  const perImage = (action: 'vary' | 'edit', short: string, long: string, emoji: string): ButtonSpec[] =>
    canReference
      ? made.map((t) => ({
          customId: encodeAction({ action, jobId: job.id, index: t.index }),
          label: several ? `${short}${t.index + 1}` : long,
          title: several ? `${long} · ${imageName(t.index)}` : long,
          emoji,
          style: 'secondary',
          index: t.index,
        }))
      : [];
  const vary = perImage('vary', 'V', 'Vary', '🔀');
  const edit = perImage('edit', 'E', 'Edit', '✏️');

  const ratioOptions = (model?.ratios ?? []).slice(0, DISCORD_MAX_CHOICES).map((r) => ({ label: RATIO_LABELS[r], value: r }));
  const ratioSelects: RatioSelectSpec[] =
    ratioOptions.length > 0
      ? made.map((t) => ({
          customId: encodeAction({ action: 'ratio', jobId: job.id, index: t.index }),
          index: t.index,
          placeholder: several ? `Change ratio of ${imageName(t.index)}…` : 'Change ratio…',
          options: ratioOptions,
        }))
      : [];

  return { upscale, vary, edit, ...(rerun && { rerun }), ...(remix && { remix }), delete: deleteButton, ratioSelects };
}

/** Discord's classic message limits: 5 action rows; a row holds up to 5 buttons or one select. */
export const DISCORD_MAX_ACTION_ROWS = 5;
export const DISCORD_MAX_BUTTONS_PER_ROW = 5;

export type ComponentRow =
  | { readonly kind: 'buttons'; readonly buttons: readonly ButtonSpec[] }
  | { readonly kind: 'select'; readonly select: RatioSelectSpec };

/**
 * Lays components out in rows within Discord's limits (docs/discord.md "Components"): the groups
 * Upscale (U1…U4), Vary (V1…V4), Edit (E1…E4) and the job's actions (Rerun, Remix, Delete), in
 * that order, each group whole, consecutive groups sharing a row when they fit in 5 buttons;
 * then one ratio select per row while rows remain. One image: [Upscale, Vary, Edit] [Rerun,
 * Remix, Delete] and its select. Four images: four button rows and image 1's select; another
 * image's ratio can be changed after varying or upscaling it. Slack has room for everything and
 * renders JobComponents directly.
 */
export function componentRows(components: JobComponents, maxRows = DISCORD_MAX_ACTION_ROWS): ComponentRow[] {
  const actions = [...(components.rerun ? [components.rerun] : []), ...(components.remix ? [components.remix] : []), components.delete];
  const rows: ComponentRow[] = [];
  let row: ButtonSpec[] = [];
  for (const group of [components.upscale, components.vary, components.edit, actions]) {
    if (group.length === 0) continue;
    if (row.length + group.length > DISCORD_MAX_BUTTONS_PER_ROW) {
      rows.push({ kind: 'buttons', buttons: row });
      row = [];
    }
    row = [...row, ...group];
  }
  if (row.length > 0) rows.push({ kind: 'buttons', buttons: row });
  for (const select of components.ratioSelects) {
    if (rows.length >= maxRows) break;
    rows.push({ kind: 'select', select });
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------
// Cancel: the one button of a placeholder (docs/architecture.md "Cancel").

/** The Cancel button under a job's placeholder while it runs; none once it is finished. */
export function cancelButtonFor(job: JobRecord): ButtonSpec | undefined {
  if (isTerminalJobState(job.state)) return undefined;
  return { customId: encodeAction({ action: 'cancel', jobId: job.id }), label: 'Cancel', title: 'Cancel', emoji: '✖️', style: 'secondary' };
}

/**
 * A click on Cancel: allowed to the job's requester and, where the platform says so (Discord's
 * MANAGE_MESSAGES), to moderators. The engine writes the request to the store; whichever process
 * runs the job stops it, and its placeholder then says what was refunded or charged.
 */
export async function cancelJob(engine: Pick<EngineApi, 'getJob' | 'cancel'>, jobId: string, clicker: Requester, o: { moderator: boolean; moderatorsExist: boolean }): Promise<JobRecord> {
  const job = await engine.getJob(jobId);
  if (!job) throw new UserFacingError('JOB_NOT_FOUND');
  const owner = job.request.requester;
  if ((owner.platform !== clicker.platform || owner.userId !== clicker.userId) && !o.moderator) {
    throw new UserFacingError('CANCEL_NOT_OWNER', { owner: `<@${owner.userId}>`, moderatorsToo: o.moderatorsExist });
  }
  return engine.cancel(jobId, clicker);
}

// ---------------------------------------------------------------------------------------------
// The forms Edit and Remix open (a Discord modal, a Slack modal view), as data.

/** The id of the form's one text field, on both platforms. */
export const FORM_TEXT_ID = 'text';
/** A form's title and field label: within Discord's 45 and Slack's 24 characters. */
const MAX_FORM_TITLE_CHARS = 24;
/** Discord's text input takes at most 4000 characters; so does a prompt (MAX_PROMPT_CHARS). */
export const MAX_FORM_TEXT_CHARS = 4000;

export interface FormSpec {
  /** The durable id of the button that opened it (commands/custom-id.ts): the submission is read with decodeAction. */
  readonly customId: string;
  readonly title: string;
  readonly label: string;
  /** Shown in the empty field (≤ 100 characters, Discord's limit). */
  readonly placeholder: string;
  /** What the field holds when the form opens. */
  readonly value?: string;
  readonly multiline: boolean;
}

/** Edit image N: one field, the instruction. */
export function editForm(jobId: string, index: number): FormSpec {
  return {
    customId: encodeAction({ action: 'edit', jobId, index }),
    title: `Edit ${imageName(index)}`.slice(0, MAX_FORM_TITLE_CHARS),
    label: 'What should change?',
    placeholder: 'e.g. make the sky purple, remove the car',
    multiline: true,
  };
}

/** Remix: the prompt and its flags, to change and run again (remixText). */
export function remixForm(job: JobRecord): FormSpec {
  const text = remixText(job.request);
  return {
    customId: encodeAction({ action: 'remix', jobId: job.id }),
    title: 'Remix',
    label: 'Prompt and flags',
    placeholder: 'a red fox in the snow --ar 16:9',
    // A prompt near the limit leaves no room for its flags: then the prompt alone (the defaults apply).
    value: text.length <= MAX_FORM_TEXT_CHARS ? text : job.request.prompt.slice(0, MAX_FORM_TEXT_CHARS),
    multiline: true,
  };
}

// ---------------------------------------------------------------------------------------------
// Reply to refine: a reply to a result (Discord) or a mention in its thread (Slack) edits it.

/** "2: make the sky purple" picks image 2; a bare instruction edits the first image made. */
const PICK_IMAGE = /^\s*([1-9])\s*[:.)]\s*([\s\S]*)$/u;

/**
 * The Edit request for a refining reply to `parent`: `text` is the reply without the bot's
 * mention, optionally starting with the image's number ("2: …"). Throws like an Edit click.
 */
export function refineRequest(parent: JobRecord, text: string, opts: Omit<ActionOptions, 'index' | 'text' | 'ratio'>): ImagineRequestInput {
  const picked = PICK_IMAGE.exec(text);
  const index = picked ? Number(picked[1]) - 1 : parent.tasks.find((t) => t.status === 'succeeded' && (t.image ?? t.outputUrl))?.index ?? 0;
  return requestForAction(parent, 'edit', { ...opts, index, text: picked ? picked[2]! : text });
}
