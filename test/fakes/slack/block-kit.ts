/**
 * Block Kit validation for the fake Slack, written from Slack's Block Kit reference
 * (docs.slack.dev/reference/block-kit): the limits a real workspace enforces and answers with
 * `invalid_blocks` (messages) or `invalid_arguments` (views). Returns human-readable problems,
 * the way Slack lists them in `response_metadata.messages`; an empty list means valid.
 */

type Json = Record<string, unknown>;

export const MAX_MESSAGE_BLOCKS = 50;
export const MAX_MODAL_BLOCKS = 100;
export const MAX_ACTIONS_ELEMENTS = 25;
export const MAX_BUTTON_TEXT_CHARS = 75;
export const MAX_ACTION_ID_CHARS = 255;
export const MAX_BUTTON_VALUE_CHARS = 2000;
export const MAX_SECTION_TEXT_CHARS = 3000;
export const MAX_BLOCK_ID_CHARS = 255;
export const MAX_OPTION_TEXT_CHARS = 75;
export const MAX_OPTION_VALUE_CHARS = 150;
export const MAX_SELECT_OPTIONS = 100;
export const MAX_CONTEXT_ELEMENTS = 10;
export const MAX_SECTION_FIELDS = 10;
export const MAX_FIELD_TEXT_CHARS = 2000;
export const MAX_HEADER_TEXT_CHARS = 150;
export const MAX_PLACEHOLDER_CHARS = 150;
export const MAX_LABEL_CHARS = 2000;
export const MAX_MODAL_TITLE_CHARS = 24;
export const MAX_MODAL_BUTTON_CHARS = 24;
export const MAX_PRIVATE_METADATA_CHARS = 3000;
export const MAX_CALLBACK_ID_CHARS = 255;

const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): v is string => typeof v === 'string';

class Problems {
  readonly list: string[] = [];
  add(path: string, msg: string) {
    this.list.push(`[ERROR] ${msg} [json-pointer:${path}]`);
  }
}

function textObject(p: Problems, path: string, v: unknown, opts: { max: number; plainOnly?: boolean }) {
  if (!isObj(v)) return p.add(path, 'must be a text object');
  if (v.type !== 'plain_text' && v.type !== 'mrkdwn') return p.add(`${path}/type`, 'must be plain_text or mrkdwn');
  if (opts.plainOnly && v.type !== 'plain_text') p.add(`${path}/type`, 'must be plain_text');
  if (!str(v.text) || v.text.length === 0) return p.add(`${path}/text`, 'must be a non-empty string');
  if (v.text.length > opts.max) p.add(`${path}/text`, `must be less than ${opts.max + 1} characters`);
}

function actionId(p: Problems, path: string, v: unknown, seen: Set<string>) {
  if (v === undefined) return;
  if (!str(v) || v.length === 0) return p.add(path, 'action_id must be a non-empty string');
  if (v.length > MAX_ACTION_ID_CHARS) p.add(path, `must be less than ${MAX_ACTION_ID_CHARS + 1} characters`);
  if (seen.has(v)) p.add(path, `action_id "${v}" is already used by another element`);
  seen.add(v);
}

function option(p: Problems, path: string, v: unknown) {
  if (!isObj(v)) return p.add(path, 'must be an option object');
  textObject(p, `${path}/text`, v.text, { max: MAX_OPTION_TEXT_CHARS, plainOnly: true });
  if (!str(v.value) || v.value.length === 0) return p.add(`${path}/value`, 'must be a non-empty string');
  if (v.value.length > MAX_OPTION_VALUE_CHARS) p.add(`${path}/value`, `must be less than ${MAX_OPTION_VALUE_CHARS + 1} characters`);
}

function element(p: Problems, path: string, el: unknown, seen: Set<string>, surface: 'message' | 'modal', inInput: boolean) {
  if (!isObj(el)) return p.add(path, 'must be an element object');
  actionId(p, `${path}/action_id`, el.action_id, seen);
  switch (el.type) {
    case 'button':
      textObject(p, `${path}/text`, el.text, { max: MAX_BUTTON_TEXT_CHARS, plainOnly: true });
      if (el.value !== undefined && (!str(el.value) || el.value.length > MAX_BUTTON_VALUE_CHARS))
        p.add(`${path}/value`, `must be a string of at most ${MAX_BUTTON_VALUE_CHARS} characters`);
      if (el.style !== undefined && el.style !== 'primary' && el.style !== 'danger') p.add(`${path}/style`, 'must be primary or danger');
      if (el.url !== undefined && (!str(el.url) || el.url.length > 3000)) p.add(`${path}/url`, 'must be a URL of at most 3000 characters');
      if (el.confirm !== undefined) confirm(p, `${path}/confirm`, el.confirm);
      return;
    case 'static_select': {
      if (el.placeholder !== undefined) textObject(p, `${path}/placeholder`, el.placeholder, { max: MAX_PLACEHOLDER_CHARS, plainOnly: true });
      const hasGroups = el.option_groups !== undefined;
      if (!hasGroups) {
        if (!Array.isArray(el.options) || el.options.length === 0) return p.add(`${path}/options`, 'must have at least 1 option');
        if (el.options.length > MAX_SELECT_OPTIONS) p.add(`${path}/options`, `must have at most ${MAX_SELECT_OPTIONS} options`);
        el.options.forEach((o, i) => option(p, `${path}/options/${i}`, o));
        if (el.initial_option !== undefined) {
          option(p, `${path}/initial_option`, el.initial_option);
          const init = el.initial_option as Json;
          if (!el.options.some((o) => isObj(o) && o.value === init.value))
            p.add(`${path}/initial_option`, 'must match one of the options');
        }
      }
      return;
    }
    case 'plain_text_input':
      if (surface === 'message' && !inInput) p.add(path, 'plain_text_input is only valid in input blocks');
      if (el.max_length !== undefined && (typeof el.max_length !== 'number' || el.max_length > 3000 || el.max_length < 1))
        p.add(`${path}/max_length`, 'must be between 1 and 3000');
      if (el.initial_value !== undefined && !str(el.initial_value)) p.add(`${path}/initial_value`, 'must be a string');
      if (el.placeholder !== undefined) textObject(p, `${path}/placeholder`, el.placeholder, { max: MAX_PLACEHOLDER_CHARS, plainOnly: true });
      return;
    case 'number_input':
      if (typeof el.is_decimal_allowed !== 'boolean') p.add(`${path}/is_decimal_allowed`, 'is required');
      for (const k of ['min_value', 'max_value', 'initial_value'])
        if (el[k] !== undefined && (!str(el[k]) || Number.isNaN(Number(el[k])))) p.add(`${path}/${k}`, 'must be a numeric string');
      return;
    case 'file_input':
      if (surface !== 'modal' || !inInput) p.add(path, 'file_input is only valid in an input block of a modal');
      if (el.max_files !== undefined && (typeof el.max_files !== 'number' || el.max_files < 1 || el.max_files > 10))
        p.add(`${path}/max_files`, 'must be between 1 and 10');
      if (el.filetypes !== undefined && (!Array.isArray(el.filetypes) || !el.filetypes.every(str))) p.add(`${path}/filetypes`, 'must be an array of strings');
      return;
    case 'image':
      if (!str(el.image_url) && !isObj(el.slack_file)) p.add(path, 'image element needs image_url or slack_file');
      if (!str(el.alt_text)) p.add(`${path}/alt_text`, 'is required');
      return;
    case 'overflow':
    case 'datepicker':
    case 'timepicker':
    case 'checkboxes':
    case 'radio_buttons':
    case 'users_select':
    case 'conversations_select':
    case 'channels_select':
    case 'external_select':
    case 'multi_static_select':
      return;
    default:
      p.add(`${path}/type`, `unsupported element type ${String(el.type)}`);
  }
}

function confirm(p: Problems, path: string, v: unknown) {
  if (!isObj(v)) return p.add(path, 'must be a confirmation dialog object');
  textObject(p, `${path}/title`, v.title, { max: 100, plainOnly: true });
  textObject(p, `${path}/text`, v.text, { max: 300 });
  textObject(p, `${path}/confirm`, v.confirm, { max: 30, plainOnly: true });
  textObject(p, `${path}/deny`, v.deny, { max: 30, plainOnly: true });
}

/** Validates a `blocks` array for a message or a modal. */
export function validateBlocks(blocks: unknown, surface: 'message' | 'modal'): string[] {
  const p = new Problems();
  if (!Array.isArray(blocks)) {
    p.add('', 'blocks must be an array');
    return p.list;
  }
  const max = surface === 'message' ? MAX_MESSAGE_BLOCKS : MAX_MODAL_BLOCKS;
  if (blocks.length > max) p.add('', `no more than ${max} items allowed`);
  const blockIds = new Set<string>();
  const actionIds = new Set<string>();
  blocks.forEach((b, i) => {
    const path = `/blocks/${i}`;
    if (!isObj(b)) return p.add(path, 'must be a block object');
    if (b.block_id !== undefined) {
      if (!str(b.block_id) || b.block_id.length === 0 || b.block_id.length > MAX_BLOCK_ID_CHARS)
        p.add(`${path}/block_id`, `must be 1 to ${MAX_BLOCK_ID_CHARS} characters`);
      else if (blockIds.has(b.block_id)) p.add(`${path}/block_id`, `duplicate block_id ${b.block_id}`);
      else blockIds.add(b.block_id);
    }
    // Strict reading: every action_id unique in the whole message or view (Slack's docs ask for
    // uniqueness; a bot must not count on duplicates across input blocks being accepted).
    const seen = actionIds;
    switch (b.type) {
      case 'section': {
        if (b.text === undefined && b.fields === undefined) p.add(path, 'section needs text or fields');
        if (b.text !== undefined) textObject(p, `${path}/text`, b.text, { max: MAX_SECTION_TEXT_CHARS });
        if (b.fields !== undefined) {
          if (!Array.isArray(b.fields) || b.fields.length > MAX_SECTION_FIELDS) p.add(`${path}/fields`, `at most ${MAX_SECTION_FIELDS} fields`);
          else b.fields.forEach((f, j) => textObject(p, `${path}/fields/${j}`, f, { max: MAX_FIELD_TEXT_CHARS }));
        }
        if (b.accessory !== undefined) element(p, `${path}/accessory`, b.accessory, seen, surface, false);
        return;
      }
      case 'actions': {
        if (!Array.isArray(b.elements) || b.elements.length === 0) return p.add(`${path}/elements`, 'must have at least 1 element');
        if (b.elements.length > MAX_ACTIONS_ELEMENTS) p.add(`${path}/elements`, `no more than ${MAX_ACTIONS_ELEMENTS} items allowed`);
        b.elements.forEach((el, j) => element(p, `${path}/elements/${j}`, el, seen, surface, false));
        return;
      }
      case 'context': {
        if (!Array.isArray(b.elements) || b.elements.length === 0) return p.add(`${path}/elements`, 'must have at least 1 element');
        if (b.elements.length > MAX_CONTEXT_ELEMENTS) p.add(`${path}/elements`, `no more than ${MAX_CONTEXT_ELEMENTS} items allowed`);
        b.elements.forEach((el, j) => {
          if (isObj(el) && el.type === 'image') element(p, `${path}/elements/${j}`, el, seen, surface, false);
          else textObject(p, `${path}/elements/${j}`, el, { max: MAX_SECTION_TEXT_CHARS });
        });
        return;
      }
      case 'header':
        textObject(p, `${path}/text`, b.text, { max: MAX_HEADER_TEXT_CHARS, plainOnly: true });
        return;
      case 'divider':
        return;
      case 'image':
        if (!str(b.image_url) && !isObj(b.slack_file)) p.add(path, 'image block needs image_url or slack_file');
        if (!str(b.alt_text)) p.add(`${path}/alt_text`, 'is required');
        return;
      case 'input':
        textObject(p, `${path}/label`, b.label, { max: MAX_LABEL_CHARS, plainOnly: true });
        if (b.hint !== undefined) textObject(p, `${path}/hint`, b.hint, { max: MAX_LABEL_CHARS, plainOnly: true });
        if (b.optional !== undefined && typeof b.optional !== 'boolean') p.add(`${path}/optional`, 'must be a boolean');
        element(p, `${path}/element`, b.element, seen, surface, true);
        return;
      case 'rich_text':
      case 'file':
      case 'video':
      case 'markdown':
        return;
      default:
        p.add(`${path}/type`, `unsupported block type ${String(b.type)}`);
    }
  });
  return p.list;
}

/** Validates a view object for views.open/update (modal only). */
export function validateView(view: unknown): string[] {
  const p = new Problems();
  if (!isObj(view)) {
    p.add('/view', 'must be a view object');
    return p.list;
  }
  if (view.type !== 'modal') p.add('/view/type', 'must be modal');
  textObject(p, '/view/title', view.title, { max: MAX_MODAL_TITLE_CHARS, plainOnly: true });
  if (view.submit !== undefined) textObject(p, '/view/submit', view.submit, { max: MAX_MODAL_BUTTON_CHARS, plainOnly: true });
  if (view.close !== undefined) textObject(p, '/view/close', view.close, { max: MAX_MODAL_BUTTON_CHARS, plainOnly: true });
  const blocks = view.blocks;
  if (Array.isArray(blocks) && blocks.some((b) => isObj(b) && b.type === 'input') && view.submit === undefined)
    p.add('/view/submit', 'is required when the view has input blocks');
  if (view.private_metadata !== undefined && (!str(view.private_metadata) || view.private_metadata.length > MAX_PRIVATE_METADATA_CHARS))
    p.add('/view/private_metadata', `must be at most ${MAX_PRIVATE_METADATA_CHARS} characters`);
  if (view.callback_id !== undefined && (!str(view.callback_id) || view.callback_id.length > MAX_CALLBACK_ID_CHARS))
    p.add('/view/callback_id', `must be at most ${MAX_CALLBACK_ID_CHARS} characters`);
  for (const e of validateBlocks(blocks, 'modal')) p.list.push(e.replace('[json-pointer:/blocks', '[json-pointer:/view/blocks'));
  return p.list;
}
