import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore } from '../../../src/engine/open-store.ts';
import { callbackUrl, ProviderCallbacks, type CallbackTarget } from '../../../src/engine/provider-callbacks.ts';
import type { Store } from '../../../src/engine/store.ts';

let store: Store;
let heard: CallbackTarget[];
let callbacks: ProviderCallbacks;

beforeEach(async () => {
  const log = pino({ level: 'silent' });
  store = await openStore('sqlite://:memory:', { log });
  heard = [];
  callbacks = new ProviderCallbacks({ store, log, ttlMs: 60_000, onCallback: (t) => heard.push(t) });
});
afterEach(async () => {
  await store.close();
});

const tokenOf = (url: string) => url.slice(url.lastIndexOf('/') + 1);

describe('ProviderCallbacks', () => {
  it('builds <publicUrl>/callbacks/<provider>/<token> whatever the public URL ends with', () => {
    expect(callbackUrl('https://bot.example.com/', 'runblob', 'T')).toBe('https://bot.example.com/callbacks/runblob/T');
    expect(callbackUrl('https://bot.example.com/imagine//', 'runbase', 'T')).toBe('https://bot.example.com/imagine/callbacks/runbase/T');
  });

  it('registers an unguessable token per task, and hears each one once, after the answer', async () => {
    const url = await callbacks.register('https://bot.example.com', 'runblob', { jobId: 'job1', index: 1 });
    expect(url).toMatch(/^https:\/\/bot\.example\.com\/callbacks\/runblob\/[0-9A-Za-z]{32}$/);
    const other = await callbacks.register('https://bot.example.com', 'runblob', { jobId: 'job1', index: 0 });
    expect(tokenOf(other)).not.toBe(tokenOf(url));

    const after = await callbacks.receive('runblob', tokenOf(url));
    expect(after).toBeTypeOf('function');
    expect(heard).toEqual([]); // nothing happens before the route has answered
    await after!();
    expect(heard).toEqual([{ jobId: 'job1', index: 1 }]);
    // A retried delivery of the same callback is answered, but fetches nothing more.
    await (await callbacks.receive('runblob', tokenOf(url)))!();
    expect(heard).toHaveLength(1);
  });

  it('knows nothing of a forged token, a malformed one, or a token under another provider', async () => {
    const url = await callbacks.register('https://bot.example.com', 'runblob', { jobId: 'job1', index: 0 });
    expect(await callbacks.receive('runblob', 'A'.repeat(32))).toBeUndefined();
    expect(await callbacks.receive('runblob', 'not-a-token')).toBeUndefined();
    expect(await callbacks.receive('runbase', tokenOf(url))).toBeUndefined();
    expect(await callbacks.receive('elsewhere', tokenOf(url))).toBeUndefined();
    expect(heard).toEqual([]);
  });
});
