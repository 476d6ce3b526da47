import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Lanes } from '../../../src/engine/lanes.ts';
import { openStore } from '../../../src/engine/open-store.ts';
import type { Store } from '../../../src/engine/store.ts';
import type { ProviderClient, ProviderName, ProviderTraits } from '../../../src/providers/types.ts';

let store: Store;
const lanes: Lanes[] = [];
const log = pino({ level: 'silent' });

beforeEach(async () => {
  store = await openStore('sqlite://:memory:', { log });
});
afterEach(async () => {
  for (const l of lanes.splice(0)) l.close();
  await store.close();
});

function client(name: ProviderName, keyId: string, rateLimit: ProviderTraits['rateLimit']): ProviderClient {
  return {
    name,
    keyId,
    traits: { rateLimit, callbacks: false, inlineReferences: undefined },
    createTask: () => Promise.reject(new Error('not used')),
    getTask: () => Promise.reject(new Error('not used')),
  };
}

function make(providers: ProviderClient[], rateLimits?: ConstructorParameters<typeof Lanes>[0]['rateLimits']): Lanes {
  const l = new Lanes({ providers, store, log, now: Date.now, rateLimits });
  lanes.push(l);
  return l;
}

describe('Lanes', () => {
  it('budgets each key by its client traits, shared through the store only when the provider counts per key', () => {
    const l = make([
      client('runblob', 'key-shared', { requests: 20, windowMs: 10_000, sharedAcrossProcesses: true }),
      client('runbase', 'key-local', { requests: 50, windowMs: 1_000, sharedAcrossProcesses: false }),
    ]);
    const shared = l.get('runblob')!.budget;
    const local = l.get('runbase')!.budget;
    // 20 / 10 s: 10% reserve, window padded by 250 ms; store buckets of ceil(10_500 / 9) ms, 2 grants each.
    expect(shared.limit).toBe(18);
    expect(shared.windowMs).toBe(10_250);
    expect(shared.sharedBuckets).toEqual({ bucketMs: 1_167, perBucket: 2 });
    expect(local.limit).toBe(45);
    expect(local.windowMs).toBe(1_250);
    expect(local.sharedBuckets).toBeUndefined();
    expect(l.providers).toEqual(new Set(['runblob', 'runbase']));
  });

  it('takes a limit given for a provider instead of its traits (scaled-down tests), still shared when the traits say so', () => {
    const l = make([client('runbase', 'k', { requests: 20, windowMs: 10_000, sharedAcrossProcesses: true })], {
      runbase: { requests: 20, windowMs: 1_000, windowPaddingMs: 25 },
    });
    const budget = l.get('runbase')!.budget;
    expect(budget.windowMs).toBe(1_025);
    expect(budget.sharedBuckets).toEqual({ bucketMs: 167, perBucket: 2 });
  });

  it('gives clients of one API key one budget and one scheduler', async () => {
    const a = client('runbase', 'same-key', { requests: 20, windowMs: 10_000, sharedAcrossProcesses: false });
    const b = client('runblob', 'same-key', { requests: 50, windowMs: 1_000, sharedAcrossProcesses: false });
    const l = make([a, b]);
    expect(l.get('runblob')).toBe(l.get('runbase'));
    await l.get('runblob')!.gate('poll');
    expect(l.get('runbase')!.budget.granted).toBe(1);
  });
});
