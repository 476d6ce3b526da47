import { describe, expect, test } from 'vitest';
import { ValidationError } from '../../../../src/engine/errors.ts';
import { MODEL_CATALOG } from '../../../../src/engine/models.ts';
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

describe('the /imagine modal', () => {
  test('has every option as an input, a file_input for JPEG/PNG/WEBP, and is a valid view', () => {
    const view = imagineModal({ models: MODEL_CATALOG, defaultModel: MODEL_CATALOG[0]!, meta: { channel: 'C1', refs: [] } });
    expect(validateView(view)).toEqual([]);
    const blocks = view.blocks as unknown as Json[];
    expect(blocks.map((b) => b.block_id)).toEqual(['prompt', 'model', 'ratio', 'resolution', 'count', 'creativity', 'images']);
    const model = (blocks[1]!.element as Json).options as Json[];
    expect(model.map((o) => o.value)).toEqual(MODEL_CATALOG.map((m) => m.key));
    expect(((blocks[1]!.element as Json).initial_option as Json).value).toBe('runbase-pro');
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
  });
});
