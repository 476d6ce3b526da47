/**
 * What both providers' wire formats share: zod pieces and the status reader. Answers are read leniently
 * (docs/providers.md: keep unknown fields, parse defensively), so these accept the
 * documented form and the harmless variants seen on the same platforms.
 */
import { z } from 'zod';
import type { TaskStatus } from './types.ts';

/** Whether `value` is an absolute http(s) URL. */
export function isHttpUrl(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  try {
    const { protocol } = new URL(value);
    return protocol === 'http:' || protocol === 'https:';
  } catch {
    return false;
  }
}

/** A free-text field of undocumented type: a string as is, any other value as its JSON, absent as null. */
export const looseText = z.unknown().transform((v) => (v == null ? null : typeof v === 'string' ? v : JSON.stringify(v)));

/** A non-negative amount given as a number or a decimal string ("0.0200", "40000"). */
export const nonNegativeAmount = z
  .union([z.number(), z.string().trim().regex(/^\d+(\.\d+)?$/).transform(Number)])
  .pipe(z.number().nonnegative());

/**
 * Reads a provider's status word as a TaskStatus. Statuses are not a closed set in practice
 * (docs/providers.md): an unknown one reads as running, so the job's deadline bounds the
 * wait, and is logged once per reader.
 */
export function createStatusReader(
  known: Readonly<Record<string, TaskStatus>>,
  onUnknown: (status: string, taskId: string) => void,
): (status: string, taskId: string) => TaskStatus {
  const seen = new Set<string>();
  return (status, taskId) => {
    const mapped = Object.hasOwn(known, status) ? known[status] : undefined;
    if (mapped) return mapped;
    if (!seen.has(status)) {
      seen.add(status);
      onUnknown(status, taskId);
    }
    return 'running';
  };
}
