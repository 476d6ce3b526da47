/**
 * The HTTP agent for discord.js's REST client.
 *
 * @discordjs/rest sends through its own undici (6.x), but without an agent it uses undici's
 * process-wide default dispatcher, which the bot's undici 8 (engine downloads, providers)
 * installs first. Undici 8 refuses multipart bodies built by another undici ("body must be a
 * FormData created by this undici package instance"), so every upload — the result images —
 * would fail. The fix: an Agent from the very undici @discordjs/rest imports.
 */
import { createRequire } from 'node:module';
import type { RESTOptions } from 'discord.js';

type Dispatcher = NonNullable<RESTOptions['agent']>;

interface UndiciModule {
  Agent: new (opts?: Record<string, unknown>) => Dispatcher;
}

let agent: Dispatcher | undefined;

export function discordRestAgent(): Dispatcher {
  if (!agent) {
    const requireFromRest = createRequire(import.meta.resolve('@discordjs/rest'));
    const undici = requireFromRest('undici') as UndiciModule;
    agent = new undici.Agent({ connect: { timeout: 30_000 } });
  }
  return agent;
}
