import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { JobNotFoundError, QuotaExceededError, REFERENCE_PROBLEMS, ReferenceError, ResultDownloadError, SpendCapError, DeadlineExceededError, ValidationError } from '../../src/engine/errors.ts';
import { JobCanceledError, ProviderUnavailableError, SubmissionUnknownError } from '../../src/engine/job-errors.ts';
import {
  BotError,
  USER_SENTENCES,
  UserFacingError,
  errorCode,
  sentenceFor,
  toUserMessage,
  type ErrorCode,
  type SentenceParams,
} from '../../src/errors.ts';
import { taskFailedError, providerErrorFromResponse } from '../../src/providers/error-parsing.ts';
import { TASK_FAILURE_CODES } from '../../src/providers/errors.ts';

/** One set of values per code: a code added to the catalogue without one here fails to typecheck. */
const SAMPLES: { [C in ErrorCode]: SentenceParams<C> } = {
  INTERNAL: {},
  INVALID_REQUEST: { sentence: 'The prompt is empty: describe the image you want.' },
  REFERENCE_NOT_AN_IMAGE: { label: 'Reference image 1' },
  REFERENCE_TOO_LARGE: { label: 'Reference image 1', detail: '25 MB' },
  REFERENCE_TOO_MANY: { detail: '5 given, this model takes 4' },
  REFERENCE_UNREACHABLE: { label: 'Reference image 1', detail: 'HTTP 404' },
  REFERENCE_FORBIDDEN_ADDRESS: { label: 'Reference image 1' },
  REFERENCE_NEEDS_PUBLIC_URL: { label: 'Reference image 1' },
  NO_IMAGES_IN_MESSAGE: {},
  QUOTA_EXCEEDED: { needed: 4, left: 1, resetsAt: Date.UTC(2026, 11, 6) },
  SPEND_CAP_REACHED: { resetsAt: Date.UTC(2026, 11, 6) },
  UNKNOWN_COMMAND: { command: 'paint', known: ['imagine', 'quota'] },
  UNKNOWN_CONTROL: {},
  MODEL_GONE: { label: 'Nano Banana (RunBlob)' },
  IMAGE_NOT_CHOSEN: { verb: 'upscale' },
  IMAGE_NOT_MADE: { n: 2, verb: 'upscale' },
  IMAGE_GONE: { n: 2 },
  NO_4K_MODEL: {},
  NO_REFERENCE_MODEL: {},
  REFINE_WITHOUT_TEXT: {},
  RATIO_NOT_OFFERED: { label: 'Nano Banana Pro (RunBlob)', ratio: '8:1', ratios: ['1:1', '16:9'] },
  PRIVATE_NOT_OFFERED: { where: 'Discord' },
  JOB_NOT_FOUND: {},
  NOT_OWNER: { owner: '<@U1>', moderatorsToo: true },
  CANCEL_NOT_OWNER: { owner: '<@1>', moderatorsToo: true },
  CANCEL_TOO_LATE: {},
  DELETE_FAILED: {},
  FORM_EXPIRED: {},
  FORM_UNAVAILABLE: {},
  FORM_OPEN_FAILED: {},
  UNREADABLE_REQUEST: {},
  MENTION_WITHOUT_PROMPT: {},
  BOT_RESTARTING: {},
  STORE_UNAVAILABLE: {},
  CHANNEL_NOT_ALLOWED: { channels: ['123'] },
  USER_BLOCKED: {},
  PROMPT_FILTERED: {},
  MODEL_NOT_ALLOWED: { label: 'Nano Banana Pro (Runbase)', allowed: ['Nano Banana 2 (Runbase)'] },
  RESOLUTION_NOT_ALLOWED: { resolution: '4K', max: '2K' },
  COUNT_NOT_ALLOWED: { count: 4, max: 2 },
  SERVER_SPEND_CAP_REACHED: { resetsAt: Date.UTC(2026, 0, 2) },
  NOT_ADMIN: { who: 'members with the Manage Server permission' },
  ADMIN_NEEDS_SERVER: { command: 'imagine-admin' },
  ADMIN_INVALID: { sentence: 'Give a number of units, e.g. "daily 20".' },
  ABOVE_CEILING: { what: 'daily units', value: '500', ceiling: '100' },
  UNLIMITED_NOT_ALLOWED: { ceiling: 100 },
  UNKNOWN_MODEL: { given: 'dalle', known: ['runbase-pro'] },
  UNKNOWN_CHANNEL: { id: '123' },
  UNKNOWN_ROLE: { id: '456' },
  UNKNOWN_USER: { id: 'U1' },
  SHOW_NOT_FOUND: { jobId: 'AbCdEfGh1234', days: 60 },
  SHOW_PRIVATE_JOB: {},
  SHOW_NOT_FINISHED: {},
  SHOW_NO_IMAGES: {},
  SHOW_IMAGES_GONE: {},
  CANCELED: {},
  SUBMISSION_UNKNOWN: {},
  PROVIDER_NOT_CONFIGURED: {},
  DEADLINE_EXCEEDED: { minutes: 10 },
  RESULT_DOWNLOAD_FAILED: {},
  PROVIDER_INVALID_REQUEST: {},
  PROVIDER_AUTH: {},
  PROVIDER_NO_CREDITS: {},
  PROVIDER_KEY_POLICY: {},
  PROVIDER_NOT_FOUND: {},
  PROVIDER_RATE_LIMITED: {},
  PROVIDER_SERVER_ERROR: {},
  PROVIDER_UNREACHABLE: {},
  PROVIDER_MALFORMED_RESPONSE: {},
  TASK_MODERATION_FAILED: {},
  TASK_INVALID_IMAGE: {},
  TASK_IMAGE_TOO_LARGE: {},
  TASK_UNSUPPORTED_IMAGE_FORMAT: {},
  TASK_TIMEOUT: {},
  TASK_FAILED: {},
};

const codes = Object.keys(USER_SENTENCES) as ErrorCode[];
const render = (code: ErrorCode) => sentenceFor(code, SAMPLES[code] as never);

describe('the catalogue of user-facing errors', () => {
  it('has a sentence for every code: a full sentence that ends with a full stop', () => {
    expect(Object.keys(SAMPLES).sort()).toEqual([...codes].sort());
    for (const code of codes) expect(render(code), code).toMatch(/^[A-Z"'].{20,}[.!]$/su);
  });

  it('gives no two codes the same sentence', () => {
    const seen = new Map<string, ErrorCode>();
    for (const code of codes) {
      const sentence = render(code);
      expect(seen.get(sentence), `${code} repeats ${seen.get(sentence)}`).toBeUndefined();
      seen.set(sentence, code);
    }
  });

  it('is the only place a fixed sentence is written (no copy in src/ or commands/)', () => {
    const root = join(import.meta.dirname, '../..');
    const files = ['src', 'commands'].flatMap((dir) =>
      readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' })
        .filter((f) => f.endsWith('.ts'))
        .map((f) => join(dir, f)),
    );
    const fixed = codes.filter((c) => USER_SENTENCES[c].length === 0);
    for (const file of files.filter((f) => f !== join('src', 'errors.ts'))) {
      const text = readFileSync(join(root, file), 'utf8');
      for (const code of fixed) {
        // The sentence's opening words are enough to spot a copy, whatever its ending.
        const opening = render(code).slice(0, 45);
        expect(text.includes(opening), `${file} copies the sentence of ${code}`).toBe(false);
      }
    }
  });

  it('turns anything that is not a BotError into INTERNAL, and a BotError into its own sentence', () => {
    expect(errorCode(new Error('boom'))).toBe('INTERNAL');
    expect(toUserMessage('a string')).toBe(sentenceFor('INTERNAL', {}));
    const err = new UserFacingError('NOT_OWNER', { owner: '<@U1>', moderatorsToo: false });
    expect(err).toBeInstanceOf(BotError);
    expect(errorCode(err)).toBe('NOT_OWNER');
    expect(toUserMessage(err)).toBe('Only <@U1>, who asked for these images, can delete them.');
  });
});

describe('every error class speaks through the catalogue', () => {
  const instances: BotError[] = [
    new ValidationError('ratio', 'a sentence built from the ratio option.'),
    ...REFERENCE_PROBLEMS.map((p) => new ReferenceError(1, p, 'detail', 'cat.png')),
    new QuotaExceededError(4, 1, Date.UTC(2026, 11, 6)),
    new SpendCapError(Date.UTC(2026, 11, 6)),
    new DeadlineExceededError(10),
    new ResultDownloadError('HTTP 500'),
    new JobNotFoundError('j1'),
    new SubmissionUnknownError(),
    new JobCanceledError(),
    new ProviderUnavailableError('runbase'),
    ...[400, 401, 402, 403, 404, 408, 422, 429, 500, 503, 302].map((status) => providerErrorFromResponse('runbase', status, '')),
    ...[...Object.keys(TASK_FAILURE_CODES), 'SOMETHING_NEW'].map((code) => taskFailedError('runblob', { code, message: code })),
  ];

  it('each has a code from the catalogue and that code’s sentence', () => {
    for (const err of instances) {
      expect(codes, err.name).toContain(err.code);
      expect(err.userMessage).toBe(toUserMessage(err));
      expect(err.userMessage.length).toBeGreaterThan(20);
    }
  });

  it('provider failures map to a closed set of codes', () => {
    expect(taskFailedError('runblob', { code: 'SOMETHING_NEW', message: '' }).code).toBe('TASK_FAILED');
    expect(taskFailedError('runblob', { code: 'moderation_failed', message: '' }).code).toBe('TASK_MODERATION_FAILED');
    expect(taskFailedError('runbase', { code: 'INSUFFICIENT_CREDITS', message: '' }).userMessage).toBe(sentenceFor('PROVIDER_NO_CREDITS', {}));
  });
});
