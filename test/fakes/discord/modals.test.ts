/**
 * The fake Discord's modals, checked with the real discord.js client: callback type 9 validated
 * and recorded, `submitModal` sending MODAL_SUBMIT shaped as Discord does (action rows and Label
 * components), with the message for modals opened from a button, once, and not after the token.
 */
import { describe, expect, it } from 'vitest';
import { MessageFlags, Routes, type ModalSubmitInteraction } from 'discord.js';
import { startWithClient } from './test-client.ts';

const start = startWithClient;

/** A modal with both layouts Discord accepts: a Label (type 18) and the older action row. */
const MODAL = {
  custom_id: 'edit:job1:2',
  title: 'Edit image 2',
  components: [
    { type: 18, label: 'What should change?', component: { type: 4, custom_id: 'instruction', style: 2, min_length: 3, max_length: 500 } },
    { type: 1, components: [{ type: 4, custom_id: 'flags', style: 1, label: 'Flags', required: false, value: '--ar 16:9' }] },
    { type: 10, content: 'The result replies to this image.' },
  ],
};

describe('fake Discord: modals', () => {
  it('a command opens a modal; submitModal sends MODAL_SUBMIT that discord.js reads', async () => {
    const { discord, seen } = await start();
    const opener = await discord.sendCommand({ name: 'imagine' });
    await discord.waitFor(() => seen[0], 2000, 'the command');
    await (seen[0] as never as { showModal(m: unknown): Promise<void> }).showModal(MODAL);
    expect(discord.interactions.get(opener.id)!.modal).toMatchObject({ custom_id: 'edit:job1:2', title: 'Edit image 2', submitted: false });

    await expect(discord.submitModal({ interaction: opener, values: { instruction: 'no' } })).rejects.toThrow(/3–500/);
    await expect(discord.submitModal({ interaction: opener, values: { nope: 'x', instruction: 'make it night' } })).rejects.toThrow(/no text input nope/);
    const submit = await discord.submitModal({ interaction: opener, values: { instruction: 'make it night' } });
    await discord.waitFor(() => seen[1], 2000, 'the submit');
    const m = seen[1] as ModalSubmitInteraction;
    expect(m.isModalSubmit()).toBe(true);
    expect(m.customId).toBe('edit:job1:2');
    expect(m.fields.getTextInputValue('instruction')).toBe('make it night');
    expect(m.fields.getTextInputValue('flags')).toBe('--ar 16:9');
    expect(m.message).toBeNull();
    expect(m.user.id).toBe(opener.userId);
    expect((submit.payload.data as { components: unknown[] }).components).toEqual([
      { type: 18, id: 1, component: { type: 4, id: 2, custom_id: 'instruction', value: 'make it night' } },
      { type: 1, id: 3, components: [{ type: 4, id: 4, custom_id: 'flags', value: '--ar 16:9' }] },
      { type: 10, id: 5 },
    ]);
    await expect(discord.submitModal({ interaction: opener })).rejects.toThrow(/already submitted/);

    // A modal cannot answer a modal; a normal reply can.
    // (discord.js offers no showModal on a modal submit: the raw callback shows what Discord says.)
    const refused = await m.client.rest
      .post(Routes.interactionCallback(m.id, m.token), { body: { type: 9, data: MODAL }, auth: false })
      .catch((e: { code: number }) => e.code);
    expect(refused).toBe(50035);
    await m.reply({ content: 'queued', flags: MessageFlags.Ephemeral });
    expect(discord.originalMessage(submit)!.content).toBe('queued');
  });

  it('a modal opened from a button carries the message; the submit may update it (type 6/7)', async () => {
    const { discord, seen } = await start();
    const msg = discord.seedBotMessage({ content: 'result', components: [{ type: 1, components: [{ type: 2, style: 2, label: 'Edit', custom_id: 'edit' }] }] });
    const click = await discord.clickComponent({ message: msg, customId: 'edit' });
    await discord.waitFor(() => seen[0], 2000, 'the click');
    await (seen[0] as never as { showModal(m: unknown): Promise<void> }).showModal(MODAL);
    await discord.submitModal({ interaction: click, values: { instruction: 'remove the car' } });
    await discord.waitFor(() => seen[1], 2000, 'the submit');
    const m = seen[1] as ModalSubmitInteraction;
    expect(m.message?.id).toBe(msg.id);
    expect(m.isFromMessage()).toBe(true);
    await m.deferUpdate();
    expect(discord.refusals).toEqual([]);
  });

  it('the modal expires with the token of the interaction that opened it', async () => {
    const { discord, seen } = await start({ tokenLifetimeMs: 300 });
    const opener = await discord.sendCommand({ name: 'imagine' });
    await discord.waitFor(() => seen[0], 2000, 'the command');
    await (seen[0] as never as { showModal(m: unknown): Promise<void> }).showModal(MODAL);
    await new Promise((r) => setTimeout(r, 350));
    await expect(discord.submitModal({ interaction: opener, values: { instruction: 'make it night' } })).rejects.toThrow(/expired/);
  });
});
