/**
 * Runbase's wire format (reference/providers.md "Runbase"). Requests are strict: the bot sends
 * exactly the documented fields. Answers are loose: unknown fields are kept, only what the bot
 * relies on is checked.
 */
import { z } from 'zod';
import { EXTENDED_RATIOS, RESOLUTIONS } from '../../engine/models.ts';

export const RUNBASE_STATUSES = ['pending', 'processing', 'succeeded', 'failed'] as const;

/** Models that take no `resolution` input (Gemini 2.5 Flash image). */
export const RUNBASE_MODELS_WITHOUT_RESOLUTION: ReadonlySet<string> = new Set(['google/nano-banana']);

const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });

/** POST /runs */
export const runbaseCreateRequestSchema = z.strictObject({
  model: z.string().min(1),
  input: z.strictObject({
    prompt: z.string().min(1),
    aspect_ratio: z.enum(EXTENDED_RATIOS).optional(),
    resolution: z.enum(RESOLUTIONS).optional(),
    image_urls: z.array(httpUrl).min(1).optional(),
  }),
});
export type RunbaseCreateRequest = z.infer<typeof runbaseCreateRequestSchema>;

/** Micro-dollars; documented as a number, a numeric string is accepted too. */
const microUsd = z.union([z.number(), z.string().regex(/^\d+(\.\d+)?$/).transform(Number)]).pipe(z.number().nonnegative());

/** A failed run's `error`: its type is not documented, so a string and `{message, code}` are both read. */
export const runbaseRunErrorSchema = z.union([
  z.string(),
  z.looseObject({ message: z.string().nullish(), code: z.union([z.string(), z.number()]).nullish() }),
]);

/** A run object, as answered by POST /runs and GET /runs/{id}. */
export const runbaseRunSchema = z
  .looseObject({
    id: z.string().min(1),
    status: z.string().min(1),
    model: z.string().nullish(),
    costUsd: microUsd.nullish(),
    output: z.looseObject({ urls: z.array(httpUrl).nullish() }).nullish(),
    error: runbaseRunErrorSchema.nullish(),
    createdAt: z.string().nullish(),
    completedAt: z.string().nullish(),
  })
  .superRefine((run, ctx) => {
    if (run.status === 'succeeded' && !(run.output?.urls && run.output.urls.length > 0)) {
      ctx.addIssue({ code: 'custom', path: ['output', 'urls'], message: 'a succeeded run must have at least one output URL' });
    }
  });
export type RunbaseRun = z.infer<typeof runbaseRunSchema>;
