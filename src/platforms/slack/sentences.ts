/**
 * What the Slack listeners tell a user when they refuse something of their own (the engine's and
 * the providers' refusals carry their sentences in their errors). Each is thrown as a
 * SlackRefusal and told by the one catch after the ack (listeners/after-ack.ts).
 */
import { BotError } from '../../errors.ts';

export const NOT_OWNER_DELETE = (ownerId: string) => `Only <@${ownerId}>, who asked for these images, can delete them.`;
export const NO_IMAGES_IN_MESSAGE =
  'That message has no JPEG, PNG or WEBP image to use. Run "Imagine with these images" on a message with images, or use /imagine and attach them in the form.';
export const MODAL_EXPIRED = 'This form has expired. Run /imagine again.';
export const UNKNOWN_BUTTON = 'This button is not one I know (it may come from an older version of the bot). Run /imagine again.';
export const UNREADABLE_REQUEST = "I couldn't read that request from Slack, so nothing was started and nothing was charged. Please try again.";
export const NO_TRIGGER = 'Slack did not give me a way to open the form. Type your prompt after /imagine instead (see /imagine help).';
export const MODAL_NOT_OPENED = 'Slack did not let me open the form in time. Please try again, or type your prompt after /imagine (see /imagine help).';
export const MENTION_USAGE =
  'Mention me with a prompt, e.g. `@Imagine a red fox in the snow --ar 16:9`, and attach JPEG, PNG or WEBP images to use them as references. `/imagine help` lists the flags.';

export type SlackRefusalCode = 'UNREADABLE_REQUEST' | 'NO_TRIGGER' | 'MODAL_NOT_OPENED' | 'NO_IMAGES_IN_MESSAGE' | 'MENTION_USAGE' | 'UNKNOWN_BUTTON' | 'NOT_OWNER';

/** Something a Slack listener will not do, with the sentence that says so. */
export class SlackRefusal extends BotError {
  readonly code: SlackRefusalCode;
  readonly sentence: string;
  constructor(code: SlackRefusalCode, sentence: string) {
    super(`slack refusal ${code}`);
    this.name = 'SlackRefusal';
    this.code = code;
    this.sentence = sentence;
  }
  get userMessage() {
    return this.sentence;
  }
}
