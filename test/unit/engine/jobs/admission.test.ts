/**
 * Admission (jobs/admission.ts) through the engine: validation first, then the quota and the spend
 * cap, then the durable record; a refused request is never charged.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { QuotaExceededError, ReferenceError, SpendCapError, ValidationError } from '../../../../src/engine/errors.ts';
import { UNFINISHED_JOBS_KEY } from '../../../../src/engine/jobs/records.ts';
import { renderPng } from '../../../fakes/png.ts';
import { build, dir, req, ScriptedClient, store, useEngineFixture, user } from '../engine-fixture.ts';

useEngineFixture();

describe('admission: validate, then charge, then persist', () => {
  it('rejects an unknown model before charging anything', async () => {
    const { engine, quotas, client } = build();
    await expect(engine.submit(req({ model: 'dalle' }))).rejects.toBeInstanceOf(ValidationError);
    expect((await quotas.view(user)).used).toBe(0);
    expect(client.creates).toEqual([]);
    expect(await store.setMembers(UNFINISHED_JOBS_KEY)).toEqual([]);
  });
  it('stores the catalog key when an alias was given, and the default model when none was', async () => {
    const { engine } = build({ env: { DEFAULT_MODEL: 'nb2' } });
    expect(engine.defaultModel.key).toBe('runbase-2');
    const a = await engine.submit(req({ model: 'pro' }));
    const b = await engine.submit(req({ model: '' }));
    expect(a.request.model).toBe('runbase-pro');
    expect(b.request.model).toBe('runbase-2');
  });
  it('refuses a request over the quota with nothing taken', async () => {
    const { engine, quotas, client } = build({ dailyUnits: 10 });
    const err = await engine.submit(req({ resolution: '4K', count: 3 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QuotaExceededError);
    expect((err as QuotaExceededError).userMessage).toContain('this needs 12 units and you have 10 units left');
    expect((await quotas.view(user)).used).toBe(0);
    expect(client.creates).toEqual([]);
  });
  it('refuses at the spend cap and gives the reserved units back', async () => {
    const { engine, quotas } = build({ spendCapUsd: 0.1 });
    await expect(engine.submit(req({ resolution: '4K' }))).rejects.toBeInstanceOf(SpendCapError);
    expect((await quotas.view(user)).used).toBe(0);
    expect(await quotas.spentToday()).toBe(0);
  });
  it('a local reference for Runbase without PUBLIC_URL fails with the sentence naming the fix, uncharged', async () => {
    const { engine, quotas } = build();
    const file = join(dir, 'ref.png');
    await writeFile(file, await renderPng({ width: 8, height: 8, seed: 1 }));
    const err = await engine.submit(req({ references: [{ kind: 'file', path: file, name: 'ref.png' }] })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReferenceError);
    expect((err as ReferenceError).code).toBe('REFERENCE_NEEDS_PUBLIC_URL');
    expect((err as ReferenceError).userMessage).toContain('PUBLIC_URL');
    expect((await quotas.view(user)).used).toBe(0);
  });

  it('sends references the way the provider traits say: inline when it takes inline images, whatever it is called', async () => {
    const inline = new ScriptedClient('runbase', { inlineReferences: { maxBytes: 1_000_000 } });
    const { engine } = build({ clients: [inline] });
    const file = join(dir, 'ref.png');
    await writeFile(file, await renderPng({ width: 8, height: 8, seed: 1 }));
    const job = await engine.submit(req({ references: [{ kind: 'file', path: file, name: 'ref.png' }] }));
    await engine.waitFor(job.id);
    expect(inline.creates[0]!.references).toEqual([{ kind: 'data', dataUrl: expect.stringMatching(/^data:image\/png;base64,/) }]);
  });

  it('no model chosen, files the default cannot receive (no PUBLIC_URL): a configured model that takes inline images is used, and the note says so', async () => {
    const runbase = new ScriptedClient('runbase', { inlineReferences: undefined });
    const runblob = new ScriptedClient('runblob', { inlineReferences: { maxBytes: 1_000_000 } });
    // Two providers, two keys (the engine keeps one lane per API key).
    Object.defineProperty(runblob, 'keyId', { value: 'runblob-key' });
    const { engine } = build({ clients: [runbase, runblob] });
    expect(engine.defaultModel.provider).toBe('runbase');
    const file = join(dir, 'ref.png');
    await writeFile(file, await renderPng({ width: 8, height: 8, seed: 1 }));
    const job = await engine.submit(req({ model: engine.defaultModel.key, modelFromDefault: true, ratio: 'auto', references: [{ kind: 'file', path: file, name: 'ref.png' }] }));
    await engine.waitFor(job.id);
    expect(job.request.model).toMatch(/^runblob-/);
    expect(job.request.note).toBe(`${engine.defaultModel.label} only takes reference images by link and this bot has no public address, so this uses ${engine.models.find((m) => m.key === job.request.model)!.label}.`);
    expect(runbase.creates).toEqual([]);
    expect(runblob.creates[0]!.references).toEqual([{ kind: 'data', dataUrl: expect.stringMatching(/^data:image\/png;base64,/) }]);

    // A model the user chose is kept, and refused with the fix.
    const chosen = await engine.submit(req({ model: engine.defaultModel.key, references: [{ kind: 'file', path: file, name: 'ref.png' }] })).catch((e: unknown) => e);
    expect((chosen as ReferenceError).code).toBe('REFERENCE_NEEDS_PUBLIC_URL');
  });

  it('no model chosen and no configured model can receive the files: refused with the fix, uncharged', async () => {
    const { engine, quotas } = build({ clients: [new ScriptedClient('runbase', { inlineReferences: undefined })] });
    const file = join(dir, 'ref.png');
    await writeFile(file, await renderPng({ width: 8, height: 8, seed: 1 }));
    const err = await engine.submit(req({ modelFromDefault: true, references: [{ kind: 'file', path: file, name: 'ref.png' }] })).catch((e: unknown) => e);
    expect((err as ReferenceError).code).toBe('REFERENCE_NEEDS_PUBLIC_URL');
    expect((await quotas.view(user)).used).toBe(0);
  });

  it('publishes a local reference for a URL-only provider when the bot serves references', async () => {
    const urlOnly = new ScriptedClient('runblob', { inlineReferences: undefined });
    const { engine } = build({ clients: [urlOnly], settings: { publicUrl: 'https://bot.example.com', servesReferences: true } });
    const file = join(dir, 'ref.png');
    await writeFile(file, await renderPng({ width: 8, height: 8, seed: 1 }));
    const job = await engine.submit(req({ model: 'runblob-pro', references: [{ kind: 'file', path: file, name: 'ref.png' }] }));
    await engine.waitFor(job.id);
    const [ref] = urlOnly.creates[0]!.references;
    expect(ref).toMatchObject({ kind: 'url', url: expect.stringMatching(/^https:\/\/bot\.example\.com\/refs\/[A-Za-z0-9_-]{43}$/) });
    const token = (ref as { url: string }).url.split('/').at(-1)!;
    expect(engine.referenceFile(token)).toMatchObject({ mime: 'image/png' });
    expect(engine.referenceFile('A'.repeat(43))).toBeUndefined();
  });
});
