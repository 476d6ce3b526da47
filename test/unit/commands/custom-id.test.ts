import { describe, expect, it } from 'vitest';
import { MAX_CUSTOM_ID_CHARS, decodeAction, encodeAction } from '../../../commands/custom-id.ts';

const JOB = 'job_01JDZ8Q3K9V2M4N6P8R0T2W4Y6';

describe('component ids', () => {
  it('encodes the documented shapes', () => {
    expect(encodeAction({ action: 'upscale', jobId: JOB, index: 2 })).toBe(`imagine:upscale:${JOB}:2`);
    expect(encodeAction({ action: 'rerun', jobId: JOB })).toBe(`imagine:rerun:${JOB}`);
    expect(encodeAction({ action: 'delete', jobId: JOB })).toBe(`imagine:delete:${JOB}`);
    expect(encodeAction({ action: 'ratio', jobId: JOB, index: 0 })).toBe(`imagine:ratio:${JOB}:0`);
  });

  it('round-trips every action; the ratio comes from the select value', () => {
    for (const index of [0, 1, 2, 3]) {
      expect(decodeAction(encodeAction({ action: 'upscale', jobId: JOB, index }))).toEqual({ action: 'upscale', jobId: JOB, index });
      expect(decodeAction(encodeAction({ action: 'ratio', jobId: JOB, index }), '21:9')).toEqual({
        action: 'ratio',
        jobId: JOB,
        index,
        ratio: '21:9',
      });
    }
    for (const index of [0, 3]) {
      for (const action of ['vary', 'edit'] as const) {
        expect(decodeAction(encodeAction({ action, jobId: JOB, index }))).toEqual({ action, jobId: JOB, index });
      }
    }
    expect(encodeAction({ action: 'edit', jobId: JOB, index: 1 })).toBe(`imagine:edit:${JOB}:1`);
    expect(decodeAction(encodeAction({ action: 'remix', jobId: JOB }))).toEqual({ action: 'remix', jobId: JOB });
    expect(decodeAction(`imagine:remix:${JOB}:1`)).toBeUndefined();
    expect(decodeAction(`imagine:vary:${JOB}`)).toBeUndefined();
    expect(decodeAction(encodeAction({ action: 'rerun', jobId: JOB }))).toEqual({ action: 'rerun', jobId: JOB });
    expect(decodeAction(encodeAction({ action: 'delete', jobId: JOB }))).toEqual({ action: 'delete', jobId: JOB });
    // A select value that is not a ratio leaves ratio unset (the click handler then says so).
    expect(decodeAction(`imagine:ratio:${JOB}:1`, '7:3')).toEqual({ action: 'ratio', jobId: JOB, index: 1 });
  });

  it('stays within 100 characters with the longest job id and action', () => {
    const longest = 'x'.repeat(80);
    const id = encodeAction({ action: 'upscale', jobId: longest, index: 3 });
    expect(id.length).toBeLessThanOrEqual(MAX_CUSTOM_ID_CHARS);
    expect(decodeAction(id)).toEqual({ action: 'upscale', jobId: longest, index: 3 });
    // A uuid, the likely engine id, leaves plenty of room.
    expect(encodeAction({ action: 'upscale', jobId: '0b8f0c57-9a4e-4d47-a2b6-6f2c1e9d3a10', index: 3 }).length).toBeLessThan(60);
  });

  it('refuses to encode what could not be decoded', () => {
    expect(() => encodeAction({ action: 'upscale', jobId: 'a:b', index: 0 })).toThrow(/cannot go in a custom id/);
    expect(() => encodeAction({ action: 'upscale', jobId: 'x'.repeat(81), index: 0 })).toThrow(/cannot go in a custom id/);
    expect(() => encodeAction({ action: 'upscale', jobId: JOB })).toThrow(/needs an image index/);
    expect(() => encodeAction({ action: 'ratio', jobId: JOB, index: 4 })).toThrow(/needs an image index/);
  });

  it('ignores ids that are not ours or were tampered with', () => {
    for (const foreign of [
      'other:upscale:abc:1',
      'imagine',
      'imagine:upscale',
      `imagine:zoom:${JOB}:1`,
      `imagine:upscale:${JOB}`,
      `imagine:upscale:${JOB}:9`,
      `imagine:upscale:${JOB}:-1`,
      `imagine:rerun:${JOB}:1`,
      `imagine:delete:${JOB}:1:2`,
      'imagine:rerun:',
    ]) {
      expect(decodeAction(foreign), foreign).toBeUndefined();
    }
  });
});
