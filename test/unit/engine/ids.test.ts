import { describe, expect, it } from 'vitest';
import { CALLBACK_TOKEN_LENGTH, isCallbackToken, isJobId, JOB_ID_LENGTH, newCallbackToken, newJobId, randomBase62 } from '../../../src/engine/ids.ts';

describe('ids', () => {
  it('job ids are 12 URL-safe base62 chars and do not repeat', () => {
    const ids = new Set(Array.from({ length: 10_000 }, newJobId));
    expect(ids.size).toBe(10_000);
    for (const id of [...ids].slice(0, 100)) {
      expect(id).toHaveLength(JOB_ID_LENGTH);
      expect(isJobId(id)).toBe(true);
      expect(encodeURIComponent(id)).toBe(id);
    }
    // Fits a Discord custom_id with room to spare.
    expect(`imagine:upscale:${newJobId()}:3`.length).toBeLessThan(100);
  });

  it('callback tokens are 32 base62 chars', () => {
    const t = newCallbackToken();
    expect(t).toHaveLength(CALLBACK_TOKEN_LENGTH);
    expect(isCallbackToken(t)).toBe(true);
    expect(isCallbackToken(`${t.slice(1)}/`)).toBe(false);
  });

  it('uses every base62 symbol roughly uniformly', () => {
    const counts = new Map<string, number>();
    for (const ch of randomBase62(62_000)) counts.set(ch, (counts.get(ch) ?? 0) + 1);
    expect(counts.size).toBe(62);
    for (const n of counts.values()) expect(n).toBeGreaterThan(700); // expected 1000 each
  });
});
