/**
 * Every refusal the bot explains to a chat user, in one catalogue: a stable code and the one
 * sentence for it (what happened and what to do). Error classes carry a code from this table and
 * the values its sentence needs; nothing else writes a refusal sentence. Branch on the class or
 * the code, never on message text.
 *
 * The one family whose sentences are not in the table is INVALID_REQUEST: a bad option's sentence
 * is built from that option's definition (e.g. commands/imagine/definition.ts: its flags, range and choices), so
 * it names what the user typed and what is allowed; ranges are declared once, there.
 */

const fmtUtc = (ms: number): string => new Date(ms).toISOString().slice(11, 16) + ' UTC';
const units = (n: number): string => `${n} unit${n === 1 ? '' : 's'}`;
const REFUNDED = 'your quota was refunded';

/** code → sentence. The parameter type of each entry is what its error class must carry. */
export const USER_SENTENCES = {
  // Anything that is not a BotError: a bug or an unexpected failure (details stay in the log).
  INTERNAL: () => 'Something went wrong on our side while making your image. Please try again in a minute.',

  // The request.
  INVALID_REQUEST: (p: { sentence: string }) => p.sentence,
  REFERENCE_NOT_AN_IMAGE: (p: { label: string }) => `${p.label} is not a JPEG, PNG or WEBP image. Attach one of those formats.`,
  REFERENCE_TOO_LARGE: (p: { label: string; detail: string }) =>
    `${p.label} is larger than 20 MB${p.detail ? ` (${p.detail})` : ''}. Use a smaller image.`,
  REFERENCE_TOO_MANY: (p: { detail: string }) => `Too many reference images: ${p.detail}. Remove some and try again.`,
  REFERENCE_UNREACHABLE: (p: { label: string; detail: string }) =>
    `${p.label} could not be downloaded${p.detail ? ` (${p.detail})` : ''}. Check the link, or attach the file instead.`,
  REFERENCE_FORBIDDEN_ADDRESS: (p: { label: string }) =>
    `${p.label} must be a public https:// link. Attach the file instead, or use a public link.`,
  REFERENCE_NEEDS_PUBLIC_URL: (p: { label: string }) =>
    `${p.label} cannot be sent to this model: Runbase only takes links, and the bot has no public address. Use a RunBlob model, give a public https:// link, or ask the bot's operator to set PUBLIC_URL.`,
  NO_IMAGES_IN_MESSAGE: () =>
    'That message has no JPEG, PNG or WEBP image to use. Run "Imagine with these images" on a message with images, or use /imagine and attach them in the form.',

  // Limits.
  QUOTA_EXCEEDED: (p: { needed: number; left: number; resetsAt: number }) =>
    `You're out of image quota for today: this needs ${units(p.needed)} and you have ${units(p.left)} left. It resets at ${fmtUtc(p.resetsAt)}; try fewer images or a lower resolution.`,
  SPEND_CAP_REACHED: (p: { resetsAt: number }) =>
    `The bot has reached its daily spending cap. New images are possible again after ${fmtUtc(p.resetsAt)}.`,

  // A server's rules (docs/governance.md): set by its admins, within the operator's ceilings.
  CHANNEL_NOT_ALLOWED: (p: { channels: readonly string[] }) =>
    `This server's admins don't allow /imagine in this channel, so nothing was started and nothing was charged. ${
      p.channels.length > 0 ? `Use it in ${p.channels.map((c) => `<#${c}>`).join(', ')}.` : 'Ask them where it can be used.'
    }`,
  USER_BLOCKED: () => "This server's admins have blocked you from making images here, so nothing was started and nothing was charged.",
  PROMPT_FILTERED: () =>
    "A rule set by this server's admins refused this prompt, so nothing was started and nothing was charged. Rephrase it.",
  MODEL_NOT_ALLOWED: (p: { label: string; allowed: readonly string[] }) =>
    `This server's admins don't allow ${p.label}. Choose one of: ${p.allowed.join(', ')}.`,
  RESOLUTION_NOT_ALLOWED: (p: { resolution: string; max: string }) =>
    `This server allows images up to ${p.max}, so ${p.resolution} can't be made here. Choose ${p.max} or lower.`,
  COUNT_NOT_ALLOWED: (p: { count: number; max: number }) =>
    `This server allows at most ${p.max} image${p.max === 1 ? '' : 's'} per request, not ${p.count}. Ask for fewer.`,
  SERVER_SPEND_CAP_REACHED: (p: { resetsAt: number }) =>
    `This server has reached the daily spending cap its admins set. New images are possible again after ${fmtUtc(p.resetsAt)}.`,

  // Admin commands and /settings.
  NOT_ADMIN: (p: { who: string }) => `Only ${p.who} can change the bot's settings here.`,
  ADMIN_NEEDS_SERVER: (p: { command: string }) => `The /${p.command} command changes a server's settings, so it only works in a server's channels, not in direct messages.`,
  ADMIN_INVALID: (p: { sentence: string }) => p.sentence,
  ABOVE_CEILING: (p: { what: string; value: string; ceiling: string }) =>
    `The bot's operator allows at most ${p.ceiling} for ${p.what}, so ${p.value} can't be set. Choose ${p.ceiling} or less.`,
  UNLIMITED_NOT_ALLOWED: (p: { ceiling: number }) =>
    `The bot's operator doesn't allow unlimited allowances. Give a number of units, at most ${p.ceiling}.`,
  UNKNOWN_MODEL: (p: { given: string; known: readonly string[] }) => `There is no model "${p.given}". Choose one of: ${p.known.join(', ')}.`,
  UNKNOWN_CHANNEL: (p: { id: string }) => `There is no channel <#${p.id}> (${p.id}) in this server that the bot can see. Mention a channel of this server.`,
  UNKNOWN_ROLE: (p: { id: string }) => `There is no role ${p.id} in this server. Mention one of this server's roles, e.g. @Members.`,
  UNKNOWN_USER: (p: { id: string }) => `There is no member ${p.id} here. Mention a member, e.g. @alice.`,

  // Controls, forms and requests from the platforms.
  UNKNOWN_COMMAND: (p: { command: string; known: readonly string[] }) =>
    `I don't know the command /${p.command}. Try ${p.known.map((c) => `/${c}`).join(' or ')}.`,
  UNKNOWN_CONTROL: () =>
    "This button isn't one the bot knows anymore (it may come from an older version of the bot). Run /imagine again.",
  MODEL_GONE: (p: { label: string }) =>
    `${p.label} is no longer offered by this bot, so this button cannot use it. Run /imagine again with another model.`,
  IMAGE_NOT_CHOSEN: (p: { verb: string }) => `Choose which image to ${p.verb}.`,
  IMAGE_NOT_MADE: (p: { n: number; verb: string }) =>
    `Image ${p.n} of this job was not made, so it cannot be used to ${p.verb}. Pick another image or rerun.`,
  IMAGE_GONE: (p: { n: number }) => `Image ${p.n} of this job is no longer available.`,
  NO_REFERENCE_MODEL: () => 'None of the models this bot offers can start from an image, so images cannot be edited or varied here.',
  NO_4K_MODEL: () => 'None of the models this bot offers can make 4K images, so images cannot be upscaled here.',
  RATIO_NOT_OFFERED: (p: { label: string; ratio: string | undefined; ratios: readonly string[] }) =>
    `${p.ratio === undefined ? 'No ratio was chosen' : `${p.label} can't make ${p.ratio} images`}. Choose one of: ${p.ratios.join(', ')}.`,
  PRIVATE_NOT_OFFERED: (p: { where: string }) =>
    `Private results are only possible on ${p.where}, so nothing was started and nothing was charged. Leave out --private (or ask in a direct message with the bot).`,
  JOB_NOT_FOUND: () => 'This image is too old or was deleted, so its buttons no longer work. Run /imagine again.',
  NOT_OWNER: (p: { owner: string; moderatorsToo: boolean }) =>
    `Only ${p.owner}, who asked for these images${p.moderatorsToo ? ', or members who can manage messages' : ''}, can delete them.`,
  CANCEL_NOT_OWNER: (p: { owner: string; moderatorsToo: boolean }) =>
    `Only ${p.owner}, who asked for this image${p.moderatorsToo ? ', or members who can manage messages' : ''}, can cancel it.`,
  CANCEL_TOO_LATE: () => 'This job has already finished, so it can no longer be canceled. Delete its message instead.',
  DELETE_FAILED: () => "The images couldn't be deleted. Please try again.",
  FORM_EXPIRED: () => 'This form has expired. Run /imagine again.',
  FORM_UNAVAILABLE: () => 'Slack did not give me a way to open the form. Type your prompt after /imagine instead (see /imagine help).',
  FORM_OPEN_FAILED: () =>
    'Slack did not let me open the form in time. Please try again, or type your prompt after /imagine (see /imagine help).',
  UNREADABLE_REQUEST: () =>
    "I couldn't read that request from Slack, so nothing was started and nothing was charged. Please try again.",
  MENTION_WITHOUT_PROMPT: () =>
    'Mention me with a prompt, e.g. `@Imagine a red fox in the snow --ar 16:9`, and attach JPEG, PNG or WEBP images to use them as references. `/imagine help` lists the flags.',
  REFINE_WITHOUT_TEXT: () =>
    'Reply to a result and mention me with what should change, e.g. `@Imagine make the sky purple`, or `@Imagine 2: make the sky purple` for image 2.',
  BOT_RESTARTING: () => 'The bot is restarting right now, so nothing was started and nothing was charged. Please try again in a moment.',
  STORE_UNAVAILABLE: () =>
    "The bot could not reach its database just now, so your image was not started and any quota it took is given back. Please try again in a minute.",

  // /show and /history.
  SHOW_NOT_FOUND: (p: { jobId: string; days: number }) =>
    `There is no job "${p.jobId}" of yours: check the id (/history lists your jobs), or it is older than ${p.days} days and gone.`,
  SHOW_PRIVATE_JOB: () => 'That job was private, so it can only be shown privately: run /show again with private set to True.',
  SHOW_NOT_FINISHED: () => 'That job is still running: its images appear in its own message when they are ready.',
  SHOW_NO_IMAGES: () => 'That job made no image (it failed or was canceled), so there is nothing to show. Rerun it from its message.',
  SHOW_IMAGES_GONE: () => "That job's image files are no longer on the bot's disk, so they cannot be posted again.",

  // A job that ran.
  CANCELED: () => 'This image was canceled, so it was not posted.',
  SUBMISSION_UNKNOWN: () =>
    `The bot restarted while sending this image to the image service, so it was not made. Please try again; ${REFUNDED}.`,
  PROVIDER_NOT_CONFIGURED: () =>
    `The image service for this job is no longer configured on the bot. Please run it again with another model; ${REFUNDED}.`,
  DEADLINE_EXCEEDED: (p: { minutes: number }) =>
    `The image service did not finish within ${p.minutes} minutes. Please try again; ${REFUNDED}.`,
  RESULT_DOWNLOAD_FAILED: () =>
    `The image was made but could not be downloaded from the image service. Please try again; ${REFUNDED}.`,

  // The image service (the providers), by class of failure.
  PROVIDER_INVALID_REQUEST: () =>
    'The image service refused these options. Try another model, ratio or resolution, or fewer reference images.',
  PROVIDER_AUTH: () => "The bot's API key for the image service was refused. The bot's operator must check the key.",
  PROVIDER_NO_CREDITS: () => `The image service account is out of credits. The bot's operator must top up credits; ${REFUNDED}.`,
  PROVIDER_KEY_POLICY: () =>
    `The bot's API key has reached its spending or usage limit, or is not allowed from this server. The bot's operator must raise the limit; ${REFUNDED}.`,
  PROVIDER_NOT_FOUND: () => `The image service lost track of this job. Please run it again; ${REFUNDED}.`,
  PROVIDER_RATE_LIMITED: () => `The image service is busy right now. Please try again in a minute; ${REFUNDED}.`,
  PROVIDER_SERVER_ERROR: () => `The image service had an internal error. Please try again in a few minutes; ${REFUNDED}.`,
  PROVIDER_UNREACHABLE: () => `The image service could not be reached. Please try again in a few minutes; ${REFUNDED}.`,
  PROVIDER_MALFORMED_RESPONSE: () =>
    `The image service sent an answer the bot could not read. Please try again later; ${REFUNDED}.`,
  TASK_MODERATION_FAILED: () =>
    `The image service refused this prompt or image under its content policy. Rephrase the prompt or use other reference images; ${REFUNDED}.`,
  TASK_INVALID_IMAGE: () =>
    `The image service could not read one of the reference images. Try a different JPEG, PNG or WEBP file; ${REFUNDED}.`,
  TASK_IMAGE_TOO_LARGE: () =>
    `A reference image is too large for the image service (20 MB at most). Use a smaller file; ${REFUNDED}.`,
  TASK_UNSUPPORTED_IMAGE_FORMAT: () =>
    `A reference image is in a format the image service does not take. Use JPEG, PNG or WEBP; ${REFUNDED}.`,
  TASK_TIMEOUT: () => `The image service timed out while generating. Please try again; ${REFUNDED}.`,
  TASK_FAILED: () =>
    `The image service could not make this image. Try rephrasing the prompt or changing the options; ${REFUNDED}.`,
} as const satisfies Record<string, (p: never) => string>;

export type ErrorCode = keyof typeof USER_SENTENCES;
/** What the sentence for `C` needs (an empty object for fixed sentences). */
export type SentenceParams<C extends ErrorCode> = Parameters<(typeof USER_SENTENCES)[C]> extends [infer P] ? P : Record<never, never>;

/** The sentence for a code. */
export function sentenceFor<C extends ErrorCode>(code: C, params: SentenceParams<C>): string {
  return (USER_SENTENCES[code] as (p: SentenceParams<C>) => string)(params);
}

/**
 * The root of every error the bot explains to a chat user: a code from USER_SENTENCES and the
 * values its sentence needs. Provider errors live in src/providers/errors.ts, engine errors in
 * src/engine/errors.ts; both extend this.
 */
export abstract class BotError<C extends ErrorCode = ErrorCode> extends Error {
  abstract readonly code: C;
  /** The values the code's sentence needs. */
  protected abstract get sentenceParams(): SentenceParams<C>;
  /** One sentence for the chat user: what happened and what to do. */
  get userMessage(): string {
    return sentenceFor(this.code, this.sentenceParams);
  }
}

/** A refusal with a fixed sentence (or one that only needs its parameters): handlers throw it. */
export class UserFacingError<C extends ErrorCode = ErrorCode> extends BotError<C> {
  readonly code: C;
  readonly #params: SentenceParams<C>;
  constructor(code: C, ...params: keyof SentenceParams<C> extends never ? [] : [SentenceParams<C>]) {
    super(code);
    this.name = 'UserFacingError';
    this.code = code;
    this.#params = (params[0] ?? {}) as SentenceParams<C>;
  }
  protected get sentenceParams(): SentenceParams<C> {
    return this.#params;
  }
}

/** The single place that turns any thrown value into the sentence a user sees. */
export function toUserMessage(err: unknown): string {
  if (err instanceof BotError) return err.userMessage;
  return sentenceFor('INTERNAL', {});
}

export function errorCode(err: unknown): ErrorCode {
  if (err instanceof BotError) return err.code;
  return 'INTERNAL';
}
