/**
 * Every Slack listener, registered on the Bolt App in one place (the layout of the bolt-js
 * TypeScript starter, slackapi/bolt-ts-starter-template: one module per kind, each with a
 * `register(app, deps)`). Each listener calls ack() before any I/O, then defers its work
 * (after-ack.ts); the shared path to a job is flow.ts.
 */
import type { App } from '@slack/bolt';
import * as actions from './actions.ts';
import * as commands from './commands.ts';
import * as forms from './forms.ts';
import type { ListenerDeps } from './flow.ts';
import * as mention from './mention.ts';
import * as modal from './modal.ts';
import * as settings from './settings.ts';
import * as shortcut from './shortcut.ts';

export type { ListenerDeps } from './flow.ts';

export function registerListeners(app: App, deps: ListenerDeps): void {
  commands.register(app, deps);
  modal.register(app, deps);
  settings.register(app, deps);
  forms.register(app, deps);
  shortcut.register(app, deps);
  actions.register(app, deps);
  mention.register(app, deps);
}
