/**
 * Runbase's wire format (docs/providers.md "Runbase"). Requests are strict: the bot sends
 * exactly the documented fields. Answers are loose: unknown fields are kept, only what the bot
 * relies on is checked.
 */
import { z } from 'zod';
import { RESOLUTIONS } from '../types.ts';
import { isHttpUrl, looseText, nonNegativeAmount } from '../wire.ts';

/** Models that take no `resolution` input (Gemini 2.5 Flash image). */
export const RUNBASE_MODELS_WITHOUT_RESOLUTION: ReadonlySet<string> = new Set(['google/nano-banana']);

/**
 * `aspect_ratio` values Runbase documents (docs/providers.md): eleven for every model, plus four
 * extreme ones for google/nano-banana-2.
 */
export const RUNBASE_ASPECT_RATIOS = ['auto', '1:1', '2:3', '3:2', '3:4', '4:3', '4:5', '5:4', '9:16', '16:9', '21:9', '1:4', '1:8', '4:1', '8:1'] as const;

const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });

/** POST /runs */
export const runbaseCreateRequestSchema = z.strictObject({
  model: z.string().min(1),
  input: z.strictObject({
    prompt: z.string().min(1),
    aspect_ratio: z.enum(RUNBASE_ASPECT_RATIOS).optional(),
    resolution: z.enum(RESOLUTIONS).optional(),
    image_urls: z.array(httpUrl).min(1).optional(),
  }),
});
export type RunbaseCreateRequest = z.infer<typeof runbaseCreateRequestSchema>;

/** Micro-dollars; documented as a number, a numeric string is accepted too. */
const microUsd = nonNegativeAmount;

/**
 * A failed run's `error`: its type is not documented, so a string and `{message, code}` are both
 * read, and anything else is kept as its JSON text rather than failing the whole answer.
 */
export const runbaseRunErrorSchema = z.unknown().transform((v): string | { message: string | null; code: string | null } => {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const { message, code } = v as Record<string, unknown>;
    return { message: looseText.parse(message), code: looseText.parse(code) };
  }
  return JSON.stringify(v) ?? String(v);
});

/**
 * A run object, as answered by POST /runs and GET /runs/{id}. Only what the bot relies on is
 * checked; `model`, `createdAt`, `completedAt` and unknown fields are kept as they come.
 */
export const runbaseRunSchema = z
  .looseObject({
    id: z.string().min(1),
    // Missing on an answer that still carries the run id: read as queued (create) or unknown (get),
    // never as a failed call, since the run exists and was charged.
    status: z.string().nullish(),
    costUsd: microUsd.nullish(),
    // Only a succeeded run's URLs matter (checked below); whatever an unfinished run carries is ignored.
    output: z.looseObject({ urls: z.array(z.string()).nullish() }).nullish(),
    error: runbaseRunErrorSchema.nullish(),
  })
  .superRefine((run, ctx) => {
    const urls = run.output?.urls ?? [];
    if (run.status === 'succeeded' && !(urls.length > 0 && urls.every(isHttpUrl))) {
      ctx.addIssue({ code: 'custom', path: ['output', 'urls'], message: 'a succeeded run must have at least one output URL, all http(s)' });
    }
  });
export type RunbaseRun = z.infer<typeof runbaseRunSchema>;
