import { describe, expect, test } from 'vitest';
import { ValidationError } from '../../../../src/engine/errors.ts';
import { MODEL_CATALOG, type ModelSpec } from '../../../../src/engine/models.ts';
import {
  MAX_PRIVATE_METADATA_CHARS,
  decodeMetadata,
  encodeMetadata,
  imagineModal,
  modalErrorBlock,
  readSubmission,
} from '../../../../src/platforms/slack/modal.ts';
import { validateView } from '../../../fakes/slack/block-kit.ts';

type Json = Record<string, unknown>;
const runbaseOnly = MODEL_CATALOG.filter((m) => m.provider === 'runbase');
const runblobStandardOnly = MODEL_CATALOG.filter((m) => m.key === 'runblob-standard');

/** The modal for these models, checked valid, by block_id. */
function modalFor(models: readonly ModelSpec[]) {
  const view = imagineModal({ models, defaultModel: models[0]!, meta: { channel: 'C1', refs: [] } });
  expect(validateView(view)).toEqual([]);
  const blocks = view.blocks as unknown as Json[];
  const block = (id: string) => blocks.find((b) => b.block_id === id);
  const element = (id: string) => block(id)?.element as Json | undefined;
  const values = (id: string) => ((element(id)?.options as Json[] | undefined) ?? []).map((o) => o.value);
  return { ids: blocks.map((b) => b.block_id), block, element, values };
}

describe('the /imagine modal', () => {
  test('has every option as an input, a file_input for JPEG/PNG/WEBP, and is a valid view', () => {
    const view = imagineModal({ models: MODEL_CATALOG, defaultModel: MODEL_CATALOG[0]!, meta: { channel: 'C1', refs: [] } });
    expect(validateView(view)).toEqual([]);
    const blocks = view.blocks as unknown as Json[];
    expect(blocks.map((b) => b.block_id)).toEqual(['prompt', 'model', 'ratio', 'resolution', 'count', 'creativity', 'images']);
    const model = (blocks[1]!.element as Json).options as Json[];
    expect(model.map((o) => o.value)).toEqual(MODEL_CATALOG.map((m) => m.key));
    // Left at "Default" unless chosen, so the engine knows the user picked no model.
    expect((blocks[1]!.element as Json).initial_option).toBeUndefined();
    const files = blocks[6]!.element as Json;
    expect(files).toMatchObject({ type: 'file_input', filetypes: ['jpg', 'jpeg', 'png', 'webp'], max_files: 8 });
    expect(blocks[0]!.optional).toBeUndefined();
    expect(blocks.slice(1).every((b) => b.optional === true)).toBe(true);
  });

  test('without a RunBlob model there is no creativity field; shortcut images are listed', () => {
    const view = imagineModal({
      models: runbaseOnly,
      defaultModel: runbaseOnly[0]!,
      meta: { channel: 'C1', threadTs: '1.2', refs: [{ id: 'F1', name: 'cat.png', url: 'https://files.slack.com/files-pri/T-F1/cat.png' }] },
    });
    expect(validateView(view)).toEqual([]);
    const ids = (view.blocks as unknown as Json[]).map((b) => b.block_id ?? b.type);
    expect(ids).not.toContain('creativity');
    expect(JSON.stringify(view.blocks)).toContain('Using the image from the message as references: cat.png');
    expect(decodeMetadata(view.private_metadata!)).toEqual({
      channel: 'C1',
      threadTs: '1.2',
      refs: [{ id: 'F1', name: 'cat.png', url: 'https://files.slack.com/files-pri/T-F1/cat.png' }],
    });
  });

  test('all models: every ratio and resolution, creativity 0 to 1, 1 to 4 images; defaults from the shared definitions', () => {
    const m = modalFor(MODEL_CATALOG);
    expect(m.values('ratio')).toEqual(['auto', '1:1', '2:3', '3:2', '3:4', '4:3', '4:5', '5:4', '9:16', '16:9', '21:9', '1:4', '1:8', '4:1', '8:1']);
    expect(m.values('resolution')).toEqual(['1K', '2K', '4K']);
    expect(m.values('count')).toEqual(['1', '2', '3', '4']);
    expect((m.element('resolution')!.initial_option as Json).value).toBe('1K');
    expect((m.element('count')!.initial_option as Json).value).toBe('1');
    expect(m.element('ratio')!.initial_option).toBeUndefined();
    expect(m.element('creativity')).toMatchObject({ type: 'number_input', is_decimal_allowed: true, min_value: '0', max_value: '1' });
    expect(m.element('prompt')).toMatchObject({ type: 'plain_text_input', multiline: true, max_length: 3000 });
    expect((m.block('ratio')!.label as Json).text).toBe('Aspect ratio');
    expect((m.block('count')!.label as Json).text).toBe('Number of images');
    expect((m.block('ratio')!.hint as Json).text).toBe("Aspect ratio (width:height). Default 1:1, or auto (the references' shape) with reference images.");
  });

  test('only RunBlob standard: no 2K or 4K, no extreme ratios, at most 4 references; creativity stays', () => {
    const m = modalFor(runblobStandardOnly);
    expect(m.values('resolution')).toEqual(['1K']);
    expect(m.values('ratio')).toEqual(['auto', '1:1', '2:3', '3:2', '3:4', '4:3', '4:5', '5:4', '9:16', '16:9', '21:9']);
    expect(m.values('ratio')).not.toContain('1:4');
    expect(m.values('model')).toEqual(['runblob-standard']);
    expect(m.ids).toContain('creativity');
    expect(m.element('images')).toMatchObject({ max_files: 4 });
  });

  test('only Runbase: no creativity field; the extreme ratios of nano-banana-2 and every resolution', () => {
    const m = modalFor(runbaseOnly);
    expect(m.ids).toEqual(['prompt', 'model', 'ratio', 'resolution', 'count', 'images']);
    expect(m.values('ratio')).toContain('1:4');
    expect(m.values('resolution')).toEqual(['1K', '2K', '4K']);
  });

  test('RunBlob Pro and 2 only: 2K and 4K, but no extreme ratio', () => {
    const m = modalFor(MODEL_CATALOG.filter((x) => x.key === 'runblob-pro' || x.key === 'runblob-2'));
    expect(m.values('resolution')).toEqual(['1K', '2K', '4K']);
    expect(m.values('ratio')).not.toContain('1:4');
    expect(m.values('ratio')).not.toContain('8:1');
  });

  test('private_metadata always fits: URLs, then names are dropped before anything is lost', () => {
    const refs = Array.from({ length: 10 }, (_, i) => ({ id: `F${i}`, name: `${'n'.repeat(100)}${i}.png`, url: `https://files.slack.com/${'u'.repeat(300)}/${i}` }));
    const raw = encodeMetadata({ channel: 'C1', refs });
    expect(raw.length).toBeLessThanOrEqual(MAX_PRIVATE_METADATA_CHARS);
    expect(decodeMetadata(raw)!.refs.map((r) => r.id)).toEqual(refs.map((r) => r.id));
    expect(decodeMetadata('not json')).toBeUndefined();
    expect(decodeMetadata('{"x":1}')).toBeUndefined();
  });
});

describe('reading a submission', () => {
  const values = (v: Record<string, Json>) => Object.fromEntries(Object.entries(v).map(([k, x]) => [k, { value: x }]));
  test('takes each field as the shared options, and the uploaded files in order', () => {
    const sub = readSubmission(
      values({
        prompt: { type: 'plain_text_input', value: 'a cat --n 2' },
        model: { type: 'static_select', selected_option: { value: 'runblob-2' } },
        ratio: { type: 'static_select', selected_option: { value: '9:16' } },
        resolution: { type: 'static_select', selected_option: { value: '2K' } },
        count: { type: 'static_select', selected_option: null },
        creativity: { type: 'number_input', value: '0.25' },
        images: { type: 'file_input', files: [{ id: 'F1', name: 'a.png', url_private: 'https://files.slack.com/a' }, { id: 'F2', url_private_download: 'https://files.slack.com/b/download' }] },
      }),
    );
    expect(sub).toEqual({
      prompt: 'a cat --n 2',
      options: { model: 'runblob-2', ratio: '9:16', resolution: '2K', creativity: 0.25 },
      files: [
        { id: 'F1', name: 'a.png', url: 'https://files.slack.com/a' },
        { id: 'F2', url: 'https://files.slack.com/b/download' },
      ],
    });
  });

  test('bad values are ValidationErrors that point at their field', () => {
    const bad = () => readSubmission(values({ prompt: { value: 'x' }, creativity: { value: '3' } }));
    expect(bad).toThrow(ValidationError);
    try {
      bad();
    } catch (err) {
      expect(modalErrorBlock((err as ValidationError).field)).toBe('creativity');
      expect((err as ValidationError).userMessage).toContain('from 0 to 1');
    }
    expect(() => readSubmission(values({ prompt: { value: '   ' } }))).toThrow(/prompt is empty/);
    expect(modalErrorBlock('references')).toBe('images');
    expect(modalErrorBlock('flags')).toBe('prompt');
    expect(modalErrorBlock('ratio')).toBe('ratio');
    expect(modalErrorBlock('private')).toBe('prompt');
  });

  test('a form opened by an earlier version still reads: elements under the action_id "value", a media type in its metadata', () => {
    const old = {
      prompt: { value: { type: 'plain_text_input', value: 'a cat' } },
      ratio: { value: { type: 'static_select', selected_option: { value: '3:2' } } },
      count: { value: { type: 'static_select', selected_option: { value: '2' } } },
      creativity: { value: { type: 'number_input', value: ' 0,5 ' } },
      images: { value: { type: 'file_input', files: [{ id: 'F1', name: 'a.png', mimetype: 'image/png', url_private: 'https://files.slack.com/a' }] } },
    };
    expect(readSubmission(old)).toEqual({
      prompt: 'a cat',
      options: { ratio: '3:2', count: 2, creativity: 0.5 },
      files: [{ id: 'F1', name: 'a.png', url: 'https://files.slack.com/a' }],
    });
    expect(decodeMetadata('{"c":"C1","t":"1.2","r":[{"i":"F1","n":"cat.png","u":"https://files.slack.com/x","m":"image/png"}]}')).toEqual({
      channel: 'C1',
      threadTs: '1.2',
      refs: [{ id: 'F1', name: 'cat.png', url: 'https://files.slack.com/x' }],
    });
  });

  test('an option Slack does not offer is not read from a submission', () => {
    expect(readSubmission(values({ prompt: { value: 'a cat' }, private: { value: 'true' } })).options).toEqual({});
  });
});
