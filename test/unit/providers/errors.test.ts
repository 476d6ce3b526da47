import { describe, expect, it } from 'vitest';
import { AuthenticationError, InsufficientCreditsError, InvalidRequestError, KeyPolicyError, MalformedResponseError, ProviderError, ProviderNetworkError, ProviderServerError, RateLimitedError, TaskFailedError, TaskNotFoundError } from '../../../src/providers/errors.ts';
import { failureCodeFromText, parseRetryAfterS, providerErrorFromNetwork, providerErrorFromResponse, taskFailedError } from '../../../src/providers/error-parsing.ts';
import { isRetryable } from '../../../src/providers/retry.ts';

const envelope = (code: string, message = `message for ${code}`) => JSON.stringify({ error: { message, code } });

type Cls = abstract new (...args: never[]) => ProviderError;

describe('providerErrorFromResponse: Runbase envelope, every documented status and code', () => {
  // [status, code, class, stable code, retry for idempotent calls, retry for billable creates]
  const table: [number, string, Cls, string, boolean, boolean][] = [
    [400, 'invalid_json', InvalidRequestError, 'PROVIDER_INVALID_REQUEST', false, false],
    [400, 'missing_model', InvalidRequestError, 'PROVIDER_INVALID_REQUEST', false, false],
    [400, 'missing_input', InvalidRequestError, 'PROVIDER_INVALID_REQUEST', false, false],
    [400, 'invalid_input', InvalidRequestError, 'PROVIDER_INVALID_REQUEST', false, false],
    [400, 'model_not_found', InvalidRequestError, 'PROVIDER_INVALID_REQUEST', false, false],
    [401, 'missing_api_key', AuthenticationError, 'PROVIDER_AUTH', false, false],
    [401, 'invalid_api_key', AuthenticationError, 'PROVIDER_AUTH', false, false],
    [402, 'insufficient_balance', InsufficientCreditsError, 'PROVIDER_NO_CREDITS', false, false],
    [403, 'api_key_spend_limit_exceeded', KeyPolicyError, 'PROVIDER_KEY_POLICY', false, false],
    [403, 'ip_not_allowed', KeyPolicyError, 'PROVIDER_KEY_POLICY', false, false],
    [404, 'run_not_found', TaskNotFoundError, 'PROVIDER_NOT_FOUND', false, false],
    [429, 'RATE_LIMITED', RateLimitedError, 'PROVIDER_RATE_LIMITED', true, true],
    [429, 'USAGE_EXCEEDED', KeyPolicyError, 'PROVIDER_KEY_POLICY', false, false],
    [500, 'internal_error', ProviderServerError, 'PROVIDER_SERVER_ERROR', true, false],
  ];
  it.each(table)('%i %s → %o', (status, code, cls, stable, idempotent, billable) => {
    const err = providerErrorFromResponse('runbase', status, envelope(code), {});
    expect(err).toBeInstanceOf(cls);
    expect(err.code).toBe(stable);
    expect(err.providerCode).toBe(code);
    expect(err.status).toBe(status);
    expect(err.provider).toBe('runbase');
    expect(err.message).toContain(`message for ${code}`);
    expect(isRetryable(err, 'idempotent')).toBe(idempotent);
    expect(isRetryable(err, 'billable')).toBe(billable);
    expect(err.userMessage.length).toBeGreaterThan(20);
  });

  it('branches on the code, not the status alone: the same 429 status is transient or permanent', () => {
    const transient = providerErrorFromResponse('runbase', 429, envelope('RATE_LIMITED'));
    const permanent = providerErrorFromResponse('runbase', 429, envelope('USAGE_EXCEEDED'));
    expect(transient.retryable).toBe(true);
    expect(permanent.retryable).toBe(false);
    expect(permanent.userMessage).not.toBe(transient.userMessage);
  });

  it('falls back on the status for undocumented codes and code-less bodies', () => {
    expect(providerErrorFromResponse('runbase', 401, envelope('key_disabled'))).toBeInstanceOf(AuthenticationError);
    expect(providerErrorFromResponse('runbase', 503, '')).toBeInstanceOf(ProviderServerError);
    expect(providerErrorFromResponse('runbase', 502, '<html><body><h1>502 Bad Gateway</h1></body></html>').message).toContain(
      '502 Bad Gateway',
    );
    expect(providerErrorFromResponse('runbase', 409, 'conflict')).toBeInstanceOf(InvalidRequestError);
  });

  it('a 408 is a transport failure: retried for polls, not for creates', () => {
    const err = providerErrorFromResponse('runbase', 408, '');
    expect(err).toBeInstanceOf(ProviderNetworkError);
    expect(isRetryable(err, 'idempotent')).toBe(true);
    expect(isRetryable(err, 'billable')).toBe(false);
  });
});

describe('providerErrorFromResponse: RunBlob shapes', () => {
  it('401 {"error","message"} → AuthenticationError with the message', () => {
    const err = providerErrorFromResponse('runblob', 401, JSON.stringify({ error: 'Unauthorized', message: 'Invalid API key' }));
    expect(err).toBeInstanceOf(AuthenticationError);
    expect(err.message).toContain('Invalid API key');
    expect(err.message).toContain('RunBlob');
  });

  it('402 {"detail":"INSUFFICIENT_CREDITS"} → InsufficientCreditsError', () => {
    const err = providerErrorFromResponse('runblob', 402, JSON.stringify({ detail: 'INSUFFICIENT_CREDITS' }));
    expect(err).toBeInstanceOf(InsufficientCreditsError);
    expect(err.providerCode).toBe('INSUFFICIENT_CREDITS');
    expect(err.retryable).toBe(false);
  });

  it('402 {"success":false,"message":"INSUFFICIENT_CREDITS"} → InsufficientCreditsError', () => {
    const err = providerErrorFromResponse('runblob', 402, JSON.stringify({ success: false, message: 'INSUFFICIENT_CREDITS' }));
    expect(err).toBeInstanceOf(InsufficientCreditsError);
    expect(err.providerCode).toBe('INSUFFICIENT_CREDITS');
  });

  it('an INSUFFICIENT_CREDITS code wins even under another status', () => {
    expect(providerErrorFromResponse('runblob', 400, JSON.stringify({ success: false, message: 'INSUFFICIENT_CREDITS' }))).toBeInstanceOf(
      InsufficientCreditsError,
    );
  });

  it('404 {"detail":"Generation not found"} → TaskNotFoundError', () => {
    const err = providerErrorFromResponse('runblob', 404, JSON.stringify({ detail: 'Generation not found' }));
    expect(err).toBeInstanceOf(TaskNotFoundError);
    expect(err.message).toContain('Generation not found');
  });

  it('422 {"detail":[{loc,msg,type}]} → InvalidRequestError naming the fields', () => {
    const body = {
      detail: [
        { type: 'string_too_long', loc: ['body', 'prompt'], msg: 'String should have at most 4000 characters' },
        { type: 'literal_error', loc: ['body', 'aspect_ratio'], msg: "Input should be '1:1'" },
        { type: 'missing', loc: ['body', 'images', 0], msg: 'Field required' },
      ],
    };
    const err = providerErrorFromResponse('runblob', 422, JSON.stringify(body));
    expect(err).toBeInstanceOf(InvalidRequestError);
    expect((err as InvalidRequestError).fields).toEqual(['prompt', 'aspect_ratio', 'images.0']);
    expect(err.message).toContain('prompt: String should have at most 4000 characters');
    expect(err.message).toContain('aspect_ratio');
    expect(err.retryable).toBe(false);
  });

  it.each([
    [400, 'Bad Request', InvalidRequestError],
    [400, JSON.stringify({ detail: 'Invalid model' }), InvalidRequestError],
    [500, JSON.stringify({ detail: 'Internal Server Error' }), ProviderServerError],
    [500, 'Internal Server Error', ProviderServerError],
    [503, '<!DOCTYPE html><html><head><style>p{}</style></head><body><p>Service Unavailable</p></body></html>', ProviderServerError],
    [503, '', ProviderServerError],
    [503, JSON.stringify({ success: false, message: 'maintenance' }), ProviderServerError],
    [500, '{not json', ProviderServerError],
    [500, JSON.stringify(['odd']), ProviderServerError],
    [500, 'null', ProviderServerError],
  ] as const)('%i %s is read defensively', (status, body, cls) => {
    const err = providerErrorFromResponse('runblob', status, body);
    expect(err).toBeInstanceOf(cls);
    expect(err.message).not.toMatch(/<|>/);
    expect(err.message.length).toBeLessThan(400);
  });

  it('keeps HTML out and the text in', () => {
    const err = providerErrorFromResponse('runblob', 503, '<html><body><p>Service Unavailable</p></body></html>');
    expect(err.message).toContain('Service Unavailable');
  });
});

describe('Retry-After', () => {
  it('reads delta-seconds and HTTP dates', () => {
    const now = Date.parse('2026-06-01T12:00:00Z');
    expect(parseRetryAfterS('7', now)).toBe(7);
    expect(parseRetryAfterS('Mon, 01 Jun 2026 12:00:05 GMT', now)).toBe(5);
    expect(parseRetryAfterS('Mon, 01 Jun 2026 11:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfterS('soon', now)).toBeUndefined();
    expect(parseRetryAfterS(undefined, now)).toBeUndefined();
  });

  it('is carried by the error built from the answer', () => {
    const now = Date.parse('2026-06-01T12:00:00Z');
    expect(providerErrorFromResponse('runbase', 429, envelope('RATE_LIMITED'), { 'retry-after': '3' }, now).retryAfterS).toBe(3);
    expect(
      providerErrorFromResponse('runblob', 503, '', { 'Retry-After': 'Mon, 01 Jun 2026 12:00:10 GMT' }, now).retryAfterS,
    ).toBe(10);
  });
});

describe('providerErrorFromNetwork', () => {
  const withCode = (code: string, message = code) => Object.assign(new Error(message), { code });

  it('connection refused and DNS failures surely never sent the request', () => {
    for (const code of ['ECONNREFUSED', 'ENOTFOUND', 'UND_ERR_CONNECT_TIMEOUT']) {
      const err = providerErrorFromNetwork('runbase', withCode(code));
      expect(err).toBeInstanceOf(ProviderNetworkError);
      expect(err.notSent).toBe(true);
      expect(isRetryable(err, 'billable')).toBe(true);
    }
  });

  it('Happy Eyeballs AggregateError of refusals counts as not sent', () => {
    const agg = Object.assign(new AggregateError([withCode('ECONNREFUSED'), withCode('ECONNREFUSED')], 'connect failed'), {
      code: 'ECONNREFUSED',
    });
    expect(providerErrorFromNetwork('runblob', agg).notSent).toBe(true);
  });

  it('resets and timeouts may have landed: only idempotent calls retry them', () => {
    for (const code of ['ECONNRESET', 'UND_ERR_SOCKET', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']) {
      const err = providerErrorFromNetwork('runbase', withCode(code));
      expect(err.notSent).toBe(false);
      expect(isRetryable(err, 'idempotent')).toBe(true);
      expect(isRetryable(err, 'billable')).toBe(false);
    }
  });

  it('an unknown failure is not assumed unsent', () => {
    expect(providerErrorFromNetwork('runbase', new Error('weird')).notSent).toBe(false);
  });
});

describe('task failures', () => {
  it('derives a code from free text', () => {
    expect(failureCodeFromText('MODERATION_FAILED')).toBe('MODERATION_FAILED');
    expect(failureCodeFromText('Generation failed: moderation_failed (safety)')).toBe('MODERATION_FAILED');
    expect(failureCodeFromText('IMAGE_TOO_LARGE: 25 MB')).toBe('IMAGE_TOO_LARGE');
    expect(failureCodeFromText('the model crashed')).toBe('GENERATION_FAILED');
    expect(failureCodeFromText(undefined)).toBe('GENERATION_FAILED');
  });

  it('taskFailedError carries the code and the user sentence for it', () => {
    const err = taskFailedError('runblob', { code: 'MODERATION_FAILED', message: 'MODERATION_FAILED' });
    expect(err).toBeInstanceOf(TaskFailedError);
    expect(err.code).toBe('TASK_MODERATION_FAILED');
    expect(err.userMessage).toMatch(/content policy/);
    expect(isRetryable(err, 'idempotent')).toBe(false);
    const generic = taskFailedError('runbase', { code: 'GENERATION_FAILED', message: 'boom' });
    expect(generic.userMessage).toMatch(/could not make this image/);
  });

  it('a malformed answer is never retried', () => {
    const err = new MalformedResponseError({ provider: 'runbase', message: 'x' });
    expect(isRetryable(err, 'idempotent')).toBe(false);
  });
});

describe('RunBlob 422 details', () => {
  it('a body-level problem names no field; an image problem keeps its code', () => {
    const whole = providerErrorFromResponse(
      'runblob',
      422,
      JSON.stringify({ detail: [{ type: 'value_error', loc: ['body'], msg: 'Value error, quality 4k requires model pro or v2' }] }),
    ) as InvalidRequestError;
    expect(whole).toBeInstanceOf(InvalidRequestError);
    expect(whole.fields).toEqual([]);
    expect(whole.message).toContain('quality 4k requires model pro or v2');
    const image = providerErrorFromResponse(
      'runblob',
      422,
      JSON.stringify({ detail: [{ type: 'value_error', loc: ['body', 'images', 1], msg: 'Value error, IMAGE_TOO_LARGE: 25 MB' }] }),
    ) as InvalidRequestError;
    expect(image).toBeInstanceOf(InvalidRequestError);
    expect(image.fields).toEqual(['images.1']);
    expect(image.providerCode).toBe('IMAGE_TOO_LARGE');
  });
});
