/**
 * Identifiers that leave the process: job ids (in Discord custom_ids, ≤ 100 chars, and Slack
 * action values) and callback tokens (in RunBlob callback URLs). Both must be unguessable, so
 * they come from crypto.randomBytes, and URL-safe, so they are base62.
 */
import { randomBytes } from 'node:crypto';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
/** 12 base62 chars ≈ 71 bits: unguessable, and short enough for `imagine:upscale:<id>:3`. */
export const JOB_ID_LENGTH = 12;
/** ≈ 190 bits: a callback URL is the only credential an unsigned RunBlob callback carries. */
export const CALLBACK_TOKEN_LENGTH = 32;

/**
 * Random bytes drawn from a pool filled POOL_BYTES at a time, as Node's crypto.randomUUID() does
 * (its entropy cache): randomBytes() costs nearly as much for 24 bytes as for 4 KiB, so one call
 * serves about 90 jobs' id and callback token. The pool holds the bytes of the next few dozen
 * tokens in the heap, as the store holds every live token; a heap snapshot of the bot is a secret.
 * A job's id and callback token cost 18-21 µs with a call each, 4-5 µs from the pool (with cold
 * caches, as in the bot; a throwaway script, runs alternating).
 */
const POOL_BYTES = 4096;
let pool = new Uint8Array(0);
let poolAt = 0;

/** Uniform base62 from random bytes (rejection sampling: 248 = 4 × 62, so no modulo bias). */
export function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    if (poolAt === pool.length) {
      pool = randomBytes(POOL_BYTES);
      poolAt = 0;
    }
    const byte = pool[poolAt++]!;
    if (byte < 248) out += BASE62[byte % 62];
  }
  return out;
}

export const newJobId = (): string => randomBase62(JOB_ID_LENGTH);
export const newCallbackToken = (): string => randomBase62(CALLBACK_TOKEN_LENGTH);

const JOB_ID_PATTERN = new RegExp(`^[0-9A-Za-z]{${JOB_ID_LENGTH}}$`);
const CALLBACK_TOKEN_PATTERN = new RegExp(`^[0-9A-Za-z]{${CALLBACK_TOKEN_LENGTH}}$`);
export const isJobId = (s: string): boolean => JOB_ID_PATTERN.test(s);
export const isCallbackToken = (s: string): boolean => CALLBACK_TOKEN_PATTERN.test(s);
