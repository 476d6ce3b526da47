import { describe, expect, it } from 'vitest';
import { componentRows, componentsFor, refineRequest, remixText, requestForAction } from '../../../commands/buttons.ts';
import { decodeAction } from '../../../commands/custom-id.ts';
import { botRefusal as refusal } from '../../support/errors.ts';
import { MODEL_CATALOG, configuredModels } from '../../../src/engine/models.ts';
import { imagineRequestSchema } from '../../../src/engine/request.ts';
import { JOB_ID, failedTask, makeJob, okTask } from './job-fixture.ts';

const clicker = { platform: 'discord', userId: '222', name: 'grace' } as const;
const location = { channelId: 'c1', replyTo: 'm1' };
const all = MODEL_CATALOG;

describe('requestForAction', () => {
  it('Vary keeps prompt and options with that image as the only reference, for the clicker', () => {
    const parent = makeJob({ request: { references: [{ kind: 'url', url: 'https://example.com/original-ref.png' }], count: 2 } });
    const request = requestForAction(parent, 'vary', { index: 1, clicker, location, models: all });
    expect(request).toEqual({
      prompt: 'a lighthouse at dusk, oil painting',
      model: 'runbase-pro',
      ratio: '16:9',
      resolution: '1K',
      count: 2,
      references: [{ kind: 'url', url: 'https://cdn.provider.example/out/1.png', localPath: `/data/images/${JOB_ID}/1.png` }],
      requester: clicker,
      location,
      parent: { jobId: JOB_ID, action: 'vary', imageIndex: 1 },
    });
    expect(imagineRequestSchema.safeParse(request).success).toBe(true);
  });

  it('Edit makes one image from that image with the instruction as the prompt; an empty one is refused by the schema', () => {
    const parent = makeJob({ request: { model: 'runblob-2', creativity: 0.4 } });
    const request = requestForAction(parent, 'edit', { index: 0, text: '  make the sky purple ', clicker, location, models: all });
    expect(request).toMatchObject({
      prompt: 'make the sky purple',
      model: 'runblob-2',
      count: 1,
      creativity: 0.4,
      references: [{ kind: 'url', url: 'https://cdn.provider.example/out/0.png', localPath: `/data/images/${JOB_ID}/0.png` }],
      requester: clicker,
      parent: { jobId: JOB_ID, action: 'edit', imageIndex: 0 },
    });
    expect(request.note).toBeUndefined();
    const empty = requestForAction(parent, 'edit', { index: 0, text: ' ', clicker, location, models: all });
    expect(imagineRequestSchema.safeParse(empty).success).toBe(false);
    expect(refusal(() => requestForAction(parent, 'edit', { index: 3, text: 'x', clicker, location, models: all }))).toMatchObject({ code: 'IMAGE_NOT_MADE' });
  });

  it('Edit from a model that takes no reference switches to one that does and says so; none at all is refused', () => {
    const noRefs = all.map((m) => (m.key === 'runbase-pro' ? { ...m, maxReferences: 0 } : m));
    const parent = makeJob({ request: { model: 'runbase-pro' } });
    const request = requestForAction(parent, 'edit', { index: 0, text: 'night', clicker, location, models: noRefs });
    expect(request.model).toBe(noRefs.find((m) => m.provider === 'runbase' && m.maxReferences > 0)!.key);
    expect(request.note).toMatch(/^Nano Banana Pro \(Runbase\) can't start from an image, so this uses /);
    const none = all.map((m) => ({ ...m, maxReferences: 0 }));
    expect(refusal(() => requestForAction(parent, 'vary', { index: 0, clicker, location, models: none }))).toMatchObject({ code: 'NO_REFERENCE_MODEL' });
    expect(componentsFor(parent, none).edit).toEqual([]);
  });

  it('a refining reply edits the first image made, or the one its "N:" names', () => {
    const parent = makeJob({ tasks: [failedTask(0), okTask(1), okTask(2)], request: { count: 3 } });
    expect(refineRequest(parent, 'make it night', { clicker, location, models: all })).toMatchObject({
      prompt: 'make it night',
      parent: { jobId: JOB_ID, action: 'edit', imageIndex: 1 },
    });
    expect(refineRequest(parent, '3: add snow', { clicker, location, models: all })).toMatchObject({ prompt: 'add snow', parent: { imageIndex: 2 } });
    expect(refineRequest(parent, '3) add snow', { clicker, location, models: all }).parent?.imageIndex).toBe(2);
    expect(refusal(() => refineRequest(parent, '1: add snow', { clicker, location, models: all }))).toMatchObject({ code: 'IMAGE_NOT_MADE' });
    // A number that is part of the instruction is not a pick.
    expect(refineRequest(parent, '2 cats on the roof', { clicker, location, models: all }).prompt).toBe('2 cats on the roof');
  });

  it('Remix reads the form text as /imagine does; the prefilled text gives back the same request', () => {
    const refs = [{ kind: 'url' as const, url: 'https://example.com/ref.png' }];
    const parent = makeJob({ request: { model: 'runblob-2', creativity: 0.3, references: refs, ratio: '4:5', resolution: '2K', count: 3 } });
    const text = remixText(parent.request);
    expect(text).toBe('a lighthouse at dusk, oil painting --model runblob-2 --ar 4:5 --res 2K --n 3 --cr 0.3');
    const same = requestForAction(parent, 'remix', { text, clicker, location, models: all });
    const rerun = requestForAction(parent, 'rerun', { clicker, location, models: all });
    expect(same).toEqual({ ...rerun, parent: { jobId: JOB_ID, action: 'remix' } });
    const changed = requestForAction(parent, 'remix', { text: 'a lighthouse at dawn --ar 16:9', clicker, location, models: all });
    expect(changed).toMatchObject({ prompt: 'a lighthouse at dawn', ratio: '16:9', model: 'runblob-2', count: 1, references: refs });
    expect(refusal(() => requestForAction(parent, 'remix', { text: 'x --bogus 1', clicker, location, models: all }))).toMatchObject({ code: 'INVALID_REQUEST' });
  });

  it('Rerun repeats prompt, options and references for the clicker', () => {
    const refs = [{ kind: 'url' as const, url: 'https://example.com/ref.png' }];
    const parent = makeJob({ request: { model: 'runblob-2', creativity: 0.3, references: refs, ratio: '4:5', resolution: '2K', count: 3 } });
    const request = requestForAction(parent, 'rerun', { clicker, location, models: all });
    expect(request).toEqual({
      prompt: 'a lighthouse at dusk, oil painting',
      model: 'runblob-2',
      ratio: '4:5',
      resolution: '2K',
      count: 3,
      creativity: 0.3,
      references: refs,
      requester: clicker,
      location,
      parent: { jobId: JOB_ID, action: 'rerun' },
    });
    expect(imagineRequestSchema.safeParse(request).success).toBe(true);
  });

  it('Upscale sends that image as the only reference, at 4K, one image, charged to the clicker', () => {
    const parent = makeJob({ request: { references: [{ kind: 'url', url: 'https://example.com/original-ref.png' }] } });
    const request = requestForAction(parent, 'upscale', { index: 1, clicker, location, models: all });
    expect(request).toEqual({
      prompt: 'a lighthouse at dusk, oil painting',
      model: 'runbase-pro',
      ratio: '16:9',
      resolution: '4K',
      count: 1,
      references: [{ kind: 'url', url: 'https://cdn.provider.example/out/1.png', localPath: `/data/images/${JOB_ID}/1.png` }],
      requester: clicker,
      location,
      parent: { jobId: JOB_ID, action: 'upscale', imageIndex: 1 },
    });
    expect(imagineRequestSchema.safeParse(request).success).toBe(true);
  });

  it('Upscale from a model without 4K switches to a 4K model of the same provider and says so', () => {
    const parent = makeJob({ request: { model: 'runblob-standard', creativity: 0.8 } });
    const request = requestForAction(parent, 'upscale', { index: 0, clicker, location, models: all });
    expect(request.model).toBe('runblob-pro');
    expect(request.resolution).toBe('4K');
    expect(request.creativity).toBe(0.8); // RunBlob Pro takes creativity too
    expect(request.note).toBe("Nano Banana (RunBlob) can't make 4K images, so this upscale uses Nano Banana Pro (RunBlob).");
  });

  it('Upscale switches across providers when it must, dropping what the new model cannot take', () => {
    const models = configuredModels(new Set(['runbase']));
    const parent = makeJob({ request: { model: 'runblob-standard', creativity: 0.8 } });
    const request = requestForAction(parent, 'upscale', { index: 0, clicker, location, models });
    expect(request.model).toBe('runbase-pro');
    expect(request.creativity).toBeUndefined();
    expect(request.note).toBe("Nano Banana (RunBlob) can't make 4K images, so this upscale uses Nano Banana Pro (Runbase).");
  });

  it('Upscale is refused with a sentence when no configured model makes 4K', () => {
    const onlyStandard = all.filter((m) => m.key === 'runblob-standard');
    const err = refusal(() => requestForAction(makeJob({ request: { model: 'runblob-standard' } }), 'upscale', { index: 0, clicker, location, models: onlyStandard }));
    expect(err.userMessage).toBe('None of the models this bot offers can make 4K images, so images cannot be upscaled here.');
  });

  it('Upscale keeps the ratio only when the new model offers it', () => {
    const parent = makeJob({ request: { model: 'runblob-standard', ratio: '21:9' } });
    expect(requestForAction(parent, 'upscale', { index: 0, clicker, location, models: all }).ratio).toBe('21:9');
    // Runbase nano-banana-2 has 8:1; if the upscale must go elsewhere, let the reference decide.
    const extreme = makeJob({ request: { model: 'runblob-standard', ratio: '8:1' } });
    expect(requestForAction(extreme, 'upscale', { index: 0, clicker, location, models: all }).ratio).toBe('auto');
  });

  it('Upscale of an image that failed is refused naming the image', () => {
    const parent = makeJob({ tasks: [okTask(0), failedTask(1)] });
    expect(refusal(() => requestForAction(parent, 'upscale', { index: 1, clicker, location, models: all })).userMessage).toBe(
      'Image 2 of this job was not made, so it cannot be used to upscale. Pick another image or rerun.',
    );
  });

  it('Upscale falls back to the local file when the provider URL is unknown', () => {
    const task = okTask(0);
    const parent = makeJob({ tasks: [{ ...task, outputUrl: undefined, image: task.image && { ...task.image, sourceUrl: '' } }] as never });
    const request = requestForAction(parent, 'upscale', { index: 0, clicker, location, models: all });
    expect(request.references).toEqual([{ kind: 'file', path: `/data/images/${JOB_ID}/0.png` }]);
  });

  it('Change ratio sends that image with the new ratio, one image, same resolution', () => {
    const parent = makeJob({ request: { resolution: '2K' } });
    const request = requestForAction(parent, 'ratio', { index: 0, ratio: '9:16', clicker, location, models: all });
    expect(request).toMatchObject({
      model: 'runbase-pro',
      ratio: '9:16',
      resolution: '2K',
      count: 1,
      references: [{ kind: 'url', url: 'https://cdn.provider.example/out/0.png' }],
      requester: clicker,
      parent: { jobId: JOB_ID, action: 'ratio', imageIndex: 0 },
    });
  });

  it('Change ratio refuses a ratio the model does not offer, listing those it does', () => {
    const err = refusal(() => requestForAction(makeJob(), 'ratio', { index: 0, ratio: '8:1', clicker, location, models: all }));
    expect(err.code).toBe('RATIO_NOT_OFFERED');
    expect(err.userMessage).toBe(
      "Nano Banana Pro (Runbase) can't make 8:1 images. Choose one of: auto, 1:1, 2:3, 3:2, 3:4, 4:3, 4:5, 5:4, 9:16, 16:9, 21:9.",
    );
  });

  it('Rerun of a job whose model is no longer configured is refused with a sentence', () => {
    const models = configuredModels(new Set(['runblob']));
    expect(refusal(() => requestForAction(makeJob(), 'rerun', { clicker, location, models })).userMessage).toBe(
      'Nano Banana Pro (Runbase) is no longer offered by this bot, so this button cannot use it. Run /imagine again with another model.',
    );
  });
});

describe('componentsFor', () => {
  it('offers U1…Un, Rerun, a ratio select per image and Delete, with ids that decode to the action', () => {
    const c = componentsFor(makeJob(), all);
    expect(c.upscale.map((b) => b.label)).toEqual(['U1', 'U2']);
    expect(c.upscale.map((b) => decodeAction(b.customId))).toEqual([
      { action: 'upscale', jobId: JOB_ID, index: 0 },
      { action: 'upscale', jobId: JOB_ID, index: 1 },
    ]);
    expect(decodeAction(c.rerun?.customId ?? '')).toEqual({ action: 'rerun', jobId: JOB_ID });
    expect(decodeAction(c.delete.customId)).toEqual({ action: 'delete', jobId: JOB_ID });
    expect(c.ratioSelects).toHaveLength(2);
    const select = c.ratioSelects[1];
    expect(select?.placeholder).toBe('Change ratio of image 2…');
    expect(decodeAction(select?.customId ?? '', '9:16')).toEqual({ action: 'ratio', jobId: JOB_ID, index: 1, ratio: '9:16' });
    // Runbase Pro offers the 11 common ratios.
    expect(select?.options.map((o) => o.value)).toEqual(['auto', '1:1', '2:3', '3:2', '3:4', '4:3', '4:5', '5:4', '9:16', '16:9', '21:9']);
    expect(select?.options).toContainEqual({ label: '16:9 (landscape)', value: '16:9' });
  });

  it('labels a single image "Upscale 4K" and skips failed images, keeping image numbers', () => {
    const three = componentsFor(makeJob({ request: { count: 3 }, tasks: [okTask(0), failedTask(1), okTask(2)] }), all);
    expect(three.upscale.map((b) => [b.label, b.index])).toEqual([['U1', 0], ['U3', 2]]);
    expect(three.ratioSelects.map((s) => s.index)).toEqual([0, 2]);
    const c = componentsFor(makeJob({ tasks: [failedTask(0), okTask(1)] }), all);
    expect(c.upscale.map((b) => [b.label, b.index])).toEqual([['Upscale 4K', 1]]);
    const single = componentsFor(makeJob({ request: { count: 1 }, tasks: [okTask(0)] }), all);
    expect(single.upscale.map((b) => b.label)).toEqual(['Upscale 4K']);
    expect(single.ratioSelects[0]?.placeholder).toBe('Change ratio…');
  });

  it('hides Upscale when no configured model makes 4K, and on images that already are 4K', () => {
    const onlyStandard = all.filter((m) => m.key === 'runblob-standard');
    expect(componentsFor(makeJob({ request: { model: 'runblob-standard' } }), onlyStandard).upscale).toEqual([]);
    expect(componentsFor(makeJob({ request: { resolution: '4K' } }), all).upscale).toEqual([]);
    // …but shows it for a model without 4K when another configured model can.
    expect(componentsFor(makeJob({ request: { model: 'runblob-standard' } }), all).upscale).toHaveLength(2);
  });

  it('offers only Try again, Remix and Delete for a failed job', () => {
    const c = componentsFor(makeJob({ state: 'failed', tasks: [failedTask(0), failedTask(1)] }), all);
    expect(c.upscale).toEqual([]);
    expect(c.ratioSelects).toEqual([]);
    expect(c.rerun?.label).toBe('Try again');
    expect(c.vary).toEqual([]);
    expect(c.edit).toEqual([]);
    expect(c.remix?.label).toBe('Remix');
  });

  it('lays out within Discord limits: at most 5 rows, 5 buttons a row, one select a row', () => {
    for (const n of [1, 2, 3, 4]) {
      const job = makeJob({ request: { count: n }, tasks: Array.from({ length: n }, (_, i) => okTask(i)) });
      const rows = componentRows(componentsFor(job, all));
      expect(rows.length, `${n} images`).toBeLessThanOrEqual(5);
      for (const row of rows) if (row.kind === 'buttons') expect(row.buttons.length).toBeLessThanOrEqual(5);
      const buttons = rows.flatMap((r) => (r.kind === 'buttons' ? r.buttons.map((b) => b.label) : []));
      const per = (short: string, long: string) => (n === 1 ? [long] : Array.from({ length: n }, (_, i) => `${short}${i + 1}`));
      expect(buttons).toEqual([...per('U', 'Upscale 4K'), ...per('V', 'Vary'), ...per('E', 'Edit'), 'Rerun', 'Remix', 'Delete']);
      const ids = rows.flatMap((r) => (r.kind === 'buttons' ? r.buttons.map((b) => b.customId) : [r.select.customId]));
      expect(new Set(ids).size).toBe(ids.length); // custom_id unique within a message
    }
    const four = componentRows(componentsFor(makeJob({ request: { count: 4 }, tasks: [0, 1, 2, 3].map((i) => okTask(i)) }), all));
    // U, V, E and the job's actions take four rows; one row is left for image 1's ratio select.
    expect(four.filter((r) => r.kind === 'select')).toHaveLength(1);
    const one = componentRows(componentsFor(makeJob({ request: { count: 1 }, tasks: [okTask(0)] }), all));
    expect(one.map((r) => (r.kind === 'buttons' ? r.buttons.map((b) => b.label) : 'select'))).toEqual([
      ['Upscale 4K', 'Vary', 'Edit'],
      ['Rerun', 'Remix', 'Delete'],
      'select',
    ]);
  });
});
