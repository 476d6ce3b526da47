/**
 * RunBlob's wire format (docs/providers.md "RunBlob"). Requests are strict and carry the
 * documented limits; answers are loose (unknown fields kept) and checked only where the bot relies
 * on them.
 */
import { z } from 'zod';
import { isHttpUrl, looseText, nonNegativeAmount } from '../wire.ts';

export const RUNBLOB_MODELS = ['standard', 'pro', 'v2'] as const;
export const RUNBLOB_QUALITIES = ['standard', '2k', '4k'] as const;
/** `aspect_ratio` values RunBlob documents (docs/providers.md). */
export const RUNBLOB_ASPECT_RATIOS = ['auto', '21:9', '16:9', '4:3', '3:2', '1:1', '9:16', '3:4', '2:3', '5:4', '4:5'] as const;
export const RUNBLOB_MAX_PROMPT_CHARS = 4000;
/** Input images per model: 4 with standard, 8 with pro and v2. */
export const RUNBLOB_MAX_IMAGES: Readonly<Record<(typeof RUNBLOB_MODELS)[number], number>> = { standard: 4, pro: 8, v2: 8 };
/**
 * "At most 20 MB each". Whether RunBlob means 10^6 or 2^20 bytes is not documented: the bot never
 * sends more than the smaller reading (references.ts shrinks larger inline images to fit).
 */
export const RUNBLOB_MAX_IMAGE_BYTES = 20_000_000;

const DATA_URL_PREFIX = /^data:image\/(png|jpeg|webp);base64,/i;

/** The decoded size of a base64 data URL's payload, computed without decoding it. */
export function dataUrlByteLength(dataUrl: string): number {
  const payload = dataUrl.length - dataUrl.indexOf(',') - 1;
  const padding = dataUrl.endsWith('==') ? 2 : dataUrl.endsWith('=') ? 1 : 0;
  return Math.floor((payload * 3) / 4) - padding;
}

const imageRef = z
  .string()
  .refine((s) => /^https?:\/\//i.test(s) || DATA_URL_PREFIX.test(s), {
    message: 'must be an http(s) URL or a base64 data URL of a JPEG, PNG or WEBP image',
  })
  .refine((s) => !DATA_URL_PREFIX.test(s) || dataUrlByteLength(s) <= RUNBLOB_MAX_IMAGE_BYTES, {
    message: `an inline image must be at most ${RUNBLOB_MAX_IMAGE_BYTES} bytes`,
  });

/** POST /v1/gemini/generate */
export const runblobCreateRequestSchema = z
  .strictObject({
    prompt: z.string().min(1).max(RUNBLOB_MAX_PROMPT_CHARS),
    model: z.enum(RUNBLOB_MODELS),
    quality: z.enum(RUNBLOB_QUALITIES),
    aspect_ratio: z.enum(RUNBLOB_ASPECT_RATIOS),
    temperature: z.number().min(0).max(1).optional(),
    images: z.array(imageRef).min(1).max(8).optional(),
    callback_url: z.url({ protocol: /^https?$/ }).optional(),
  })
  .superRefine((req, ctx) => {
    if (req.model === 'standard' && req.quality !== 'standard') {
      ctx.addIssue({ code: 'custom', path: ['quality'], message: `${req.quality} needs model pro or v2` });
    }
    const max = RUNBLOB_MAX_IMAGES[req.model];
    if (req.images && req.images.length > max) {
      ctx.addIssue({ code: 'custom', path: ['images'], message: `at most ${max} images with model ${req.model}` });
    }
  });
export type RunblobCreateRequest = z.infer<typeof runblobCreateRequestSchema>;

/** Answer of POST /v1/gemini/generate. */
export const runblobCreatedSchema = z.looseObject({
  task_uuid: z.string().min(1),
  status: z.string().min(1).nullish(),
  // USD, documented as a decimal string ("0.0200"); a plain number is accepted too.
  price: nonNegativeAmount.nullish(),
});

/** Answer of GET /v1/gemini/generations/{task_uuid} (and the callback's body). */
export const runblobGenerationSchema = z
  .looseObject({
    task_uuid: z.string().min(1),
    // Missing: read as an unknown status (still running until the deadline), not as a failed call.
    status: z.string().nullish(),
    // Only a completed task's URL matters (checked below); "" or junk on an unfinished task is ignored.
    result_image_url: z.string().nullish(),
    message: looseText,
  })
  .superRefine((g, ctx) => {
    if (g.status === 'completed' && !isHttpUrl(g.result_image_url)) {
      ctx.addIssue({ code: 'custom', path: ['result_image_url'], message: 'a completed task must have an http(s) result_image_url' });
    }
  });
export type RunblobGeneration = z.infer<typeof runblobGenerationSchema>;

/** GET /v1/gemini/generations?limit=&offset= → an array of the same objects. */
export const runblobGenerationListSchema = z.array(runblobGenerationSchema);

/** GET /v1/data/balance → `{"balance": "<string>"}` (USD; a negative balance is read, not rejected). */
export const runblobBalanceSchema = z.looseObject({
  balance: z.union([z.number(), z.string().trim().regex(/^-?\d+(\.\d+)?$/).transform(Number)]).pipe(z.number()),
});
