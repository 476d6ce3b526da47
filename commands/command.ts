/**
 * What a command module is: its definition (name, description, options as data) and its handler,
 * written against a small platform-neutral surface. The platforms' dispatchers look commands up in
 * the registry (commands/index.ts), call `prepare` before they answer (pure CPU, so a refusal can
 * still be private), answer as the invocation asks, then `run` it; whatever `prepare` or `run`
 * throws is rendered by the dispatcher's one catch, privately.
 */
import type { EngineApi } from '../src/engine/api.ts';
import type { JobRecord } from '../src/engine/job.ts';
import type { ImagineRequestInput, PlatformLocation, ReferenceInput, Requester } from '../src/engine/request.ts';
import type { CommandDefinition } from './options.ts';
import type { TextFormat } from './render.ts';

/** What a platform collected for one invocation. */
export interface CommandInput {
  /**
   * Option values by option name, as the platform collected them: Discord's typed options, Slack's
   * form fields (strings), or, for text-only invocations (Slack's `/imagine a cat --ar 16:9`, a
   * mention, the CLI), just the text as the first required string option (`prompt`).
   */
  readonly options: Readonly<Record<string, unknown>>;
  /** Reference images the platform collected (attachments, uploaded files). */
  readonly refs: readonly ReferenceInput[];
  readonly requester: Requester;
}

/** What a command may use once the platform has answered (the placeholder exists). */
export interface CommandSurface {
  readonly engine: EngineApi;
  /**
   * Submits a job through the platform (engine.submit, with whatever the platform must know of
   * a job before its first progress event: Slack tracks it to post the placeholder).
   */
  submit(request: ImagineRequestInput): Promise<JobRecord>;
  /** The platform's markup for shared texts. */
  readonly format: TextFormat;
  /** Where the answer is: the engine delivers a job's progress and results there. */
  readonly location: PlatformLocation;
  /** Shows `text` as the answer (it replaces the placeholder; private when the invocation is). */
  reply(text: string): Promise<void>;
  /**
   * Posts a finished job's images again as the answer, with its summary and buttons (/show).
   * Absent where the platform cannot (the CLI).
   */
  show?(job: JobRecord): Promise<void>;
}

export interface Invocation {
  /** Whether the first answer (the placeholder) is seen by the channel or only by the requester. */
  readonly visibility: 'public' | 'private';
  /**
   * The work after the first answer. Throws a BotError to refuse: the dispatcher removes a public
   * placeholder and tells the requester privately. Resolves with the job it started, if any.
   */
  run(surface: CommandSurface): Promise<JobRecord | void>;
}

/** What `prepare` may read of the engine: configuration in memory, no I/O. */
export type PrepareContext = Pick<EngineApi, 'models' | 'defaultModel'>;

export interface Command extends CommandDefinition {
  /**
   * Parses and validates the input without I/O (so it runs before the platform answers), or throws
   * a BotError whose sentence says what to fix.
   */
  prepare(input: CommandInput, context: PrepareContext): Invocation;
}
