/**
 * What every listener does after its ack(): the work runs deferred (ctx.afterAck, so the
 * acknowledgement goes out first, within Slack's 3 s: docs/slack.md "Deadlines"), and whatever
 * it throws ends in ONE catch that logs it with its context and tells the user privately, in the
 * words of src/errors.ts's toUserMessage. A listener never answers a refusal itself.
 */
import type { z } from 'zod';
import { UserFacingError, errorCode, toUserMessage } from '../../../errors.ts';
import { tellUser, type SlackContext, type Where } from '../context.ts';
import { roughWhere } from '../payloads.ts';
import type { ListenerDeps } from './flow.ts';

/** The part of Bolt's listener arguments a command, shortcut or action handler uses. */
export interface AckArgs {
  ack: () => Promise<void>;
  body: unknown;
}

/** Runs `work` after the ack; a failure is logged and told to the user at `where`. */
export function afterAck(deps: ListenerDeps, what: string, where: Where, work: () => Promise<void>, opts?: { urgent?: boolean }): void {
  const guarded = async () => {
    try {
      await work();
    } catch (err) {
      await tellFailure(deps.ctx, what, where, err);
    }
  };
  deps.ctx.afterAck(what, guarded, opts);
}

/** The one catch: logs (code, user, what) and tells the user the error's sentence, ephemerally. */
export async function tellFailure(ctx: SlackContext, what: string, where: Where, err: unknown): Promise<void> {
  const code = errorCode(err);
  if (code === 'INTERNAL') ctx.log.error({ err, code, user: where.user, what }, 'slack request failed');
  else ctx.log.info({ code, user: where.user, what }, 'slack request refused');
  ctx.metrics?.refusals.inc({ platform: 'slack', code });
  await tellUser(ctx, where, toUserMessage(err));
}

/**
 * Reads an acknowledged payload. One the bot cannot read is logged and, when it says who and
 * where, explained to the user: never a silent no-op.
 */
export function readPayload<T>(deps: ListenerDeps, schema: z.ZodType<T>, body: unknown, what: string): T | undefined {
  const read = schema.safeParse(body);
  if (read.success) return read.data;
  deps.ctx.log.warn({ what, issues: read.error.issues.slice(0, 5) }, 'slack payload the bot cannot read');
  const where = roughWhere(body);
  if (where) {
    afterAck(deps, what, where, async () => {
      throw new UserFacingError('UNREADABLE_REQUEST');
    });
  }
  return undefined;
}
