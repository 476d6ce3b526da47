/**
 * The catalog offers only what each provider's API documents: the provider schemas keep their
 * own documented lists (src/providers/<name>/schemas.ts), and this checks the catalog against them.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { configuredModels, findModel, MODEL_CATALOG, PROVIDERS, type ProviderName } from '../../../src/engine/models.ts';
import { RunbaseClient } from '../../../src/providers/runbase/client.ts';
import { RUNBASE_ASPECT_RATIOS } from '../../../src/providers/runbase/schemas.ts';
import { RunblobClient } from '../../../src/providers/runblob/client.ts';
import { RUNBLOB_ASPECT_RATIOS } from '../../../src/providers/runblob/schemas.ts';

const DOCUMENTED_RATIOS: Record<ProviderName, readonly string[]> = { runbase: RUNBASE_ASPECT_RATIOS, runblob: RUNBLOB_ASPECT_RATIOS };

const clients = {
  runbase: new RunbaseClient({ apiKey: 'k-runbase', baseUrl: 'https://runbase.invalid/api/v1' }),
  runblob: new RunblobClient({ apiKey: 'k-runblob', baseUrl: 'https://runblob.invalid' }),
};
afterAll(async () => {
  await Promise.all(Object.values(clients).map((c) => c.close()));
});

describe('MODEL_CATALOG against the providers', () => {
  it('offers, for each model, only ratios its provider documents', () => {
    for (const model of MODEL_CATALOG) {
      const undocumented = model.ratios.filter((r) => !DOCUMENTED_RATIOS[model.provider].includes(r));
      expect(undocumented, `${model.key}`).toEqual([]);
    }
  });

  it('builds a request the provider schema accepts for every ratio and resolution a model offers', () => {
    for (const model of MODEL_CATALOG) {
      for (const ratio of model.ratios) {
        for (const resolution of model.resolutions) {
          const input = { prompt: 'a fox', model: model.providerModel, ratio, resolution, references: [] };
          expect(() => clients[model.provider].buildCreateRequest(input), `${model.key} ${ratio} ${resolution}`).not.toThrow();
        }
      }
    }
  });

  it('names only known providers', () => {
    for (const model of MODEL_CATALOG) expect(PROVIDERS).toContain(model.provider);
  });
});

describe('configuredModels and findModel', () => {
  it('keeps catalog order and finds a model by key, label or alias among the configured ones', () => {
    const runblob = configuredModels(new Set(['runblob']));
    expect(runblob.map((m) => m.key)).toEqual(['runblob-standard', 'runblob-pro', 'runblob-2']);
    expect(findModel(runblob, 'RUNBLOB-PRO')?.key).toBe('runblob-pro');
    expect(findModel(runblob, 'Nano Banana 2 (RunBlob)')?.key).toBe('runblob-2');
    expect(findModel(runblob, 'nb2')?.key).toBe('runblob-2');
    expect(findModel(runblob, 'runbase-pro')).toBeUndefined();
  });
});
