/**
 * The "Imagine with these images" message shortcut: opens the modal with the message's JPEG, PNG
 * and WEBP files as references (as many as the configured models take), answered in its thread.
 */
import type { App } from '@slack/bolt';
import type { Where } from '../context.ts';
import { referenceMime } from '../files.ts';
import { IMAGINE_SHORTCUT_CALLBACK_ID } from '../manifest.ts';
import { fileRef, messageShortcutSchema, type MessageShortcutPayload } from '../payloads.ts';
import { UserFacingError } from '../../../errors.ts';
import { afterAck, readPayload, type AckArgs } from './after-ack.ts';
import { openModal, type ListenerDeps } from './flow.ts';

export function messageShortcut(deps: ListenerDeps) {
  return async ({ ack, body }: AckArgs): Promise<void> => {
    await ack();
    const s = readPayload(deps, messageShortcutSchema, body, 'message shortcut');
    if (!s) return;
    const threadTs = s.message.thread_ts ?? s.message.ts;
    const where: Where = {
      channel: s.channel.id,
      user: s.user.id,
      threadTs,
      ...(s.response_url ? { responseUrl: s.response_url } : {}),
      ...(s.team?.id ? { team: s.team.id } : {}),
    };
    afterAck(deps, 'message shortcut', where, () => withImages(deps, s, threadTs), { urgent: true });
  };
}

async function withImages(deps: ListenerDeps, s: MessageShortcutPayload, threadTs: string): Promise<void> {
  const maxRefs = Math.max(1, ...deps.ctx.engine.models.map((m) => m.maxReferences));
  const images = (s.message.files ?? []).filter((f) => referenceMime(f) !== undefined);
  if (images.length === 0) throw new UserFacingError('NO_IMAGES_IN_MESSAGE');
  await openModal(deps, s.trigger_id, { channel: s.channel.id, threadTs, refs: images.slice(0, maxRefs).map(fileRef) });
}

export function register(app: App, deps: ListenerDeps): void {
  app.shortcut(IMAGINE_SHORTCUT_CALLBACK_ID, messageShortcut(deps));
}
