/**
 * The Slack app manifest (commands/slack-manifest.yml), generated from the command definitions
 * (commands/index.ts), so a user creates the app in one paste and the slash commands, the
 * message shortcut and the scopes can never drift from what the bot handles.
 *
 *   node src/platforms/slack/manifest.ts            # print it
 *   node src/platforms/slack/manifest.ts --write    # rewrite commands/slack-manifest.yml
 *
 * A unit test fails when the committed file differs from the generated one.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { COMMANDS } from '../../../commands/index.ts';
import { IMAGINE_OPTIONS, REF_FLAG } from '../../../commands/imagine/definition.ts';

/** The message shortcut's callback_id (the app registers the same constant). */
export const IMAGINE_SHORTCUT_CALLBACK_ID = 'imagine_with_images';
export const IMAGINE_SHORTCUT_NAME = 'Imagine with these images';
/** Bolt's default path on the bot's own HTTP server. */
export const SLACK_EVENTS_PATH = '/slack/events';
export const PLACEHOLDER_HOST = 'https://your-bot.example.com';

/**
 * Bot scopes, each for a reason:
 * commands: slash commands and the shortcut; chat:write: placeholder, updates, ephemeral errors;
 * chat:write.public: post in public channels without being invited first; files:write: the
 * result images (files.uploadV2); files:read: reference images from file_input and messages;
 * channels:join: join a public channel before uploading into it; app_mentions:read: "@Imagine a
 * prompt" with images attached (the Events API's app_mention); users:read: users.info's admin
 * and owner flags for /imagine-admin and the members an admin names; channels:read, groups:read:
 * conversations.info for the channels an admin names (docs/governance.md).
 */
export const BOT_SCOPES = [
  'commands',
  'chat:write',
  'chat:write.public',
  'files:read',
  'files:write',
  'channels:join',
  'app_mentions:read',
  'users:read',
  'channels:read',
  'groups:read',
] as const;

/** Slack's grey hint after a command's name, for the commands whose text is more than a prompt. */
const USAGE_HINTS: Readonly<Record<string, () => string>> = {
  imagine: () => imagineUsageHint(),
  settings: () => '[--model pro] [--ar 16:9] [--res 2K] [--n 2] | reset | (nothing: a form)',
  'imagine-admin': () => 'help | show | channels allow #art | daily 20 | user @alice 50 | block @bob | filter add word | usage | audit',
};
/** Events the bot subscribes to (and handles). */
export const BOT_EVENTS = ['app_mention'] as const;

/** "[prompt] [--model pro] [--ar 16:9] … | help | quota" from the option definitions. */
export function imagineUsageHint(): string {
  const flags = Object.values(IMAGINE_OPTIONS)
    .filter((o): o is typeof o & { example: string } => 'example' in o && !('platforms' in o && !(o.platforms as readonly string[]).includes('slack')))
    .map((o) => `[${o.example}]`);
  return `prompt ${flags.join(' ')} [${REF_FLAG.example.split(' ')[0]} link] | help | quota`;
}

export interface ManifestOptions {
  /** Public base URL of the bot (PUBLIC_URL); a placeholder by default. */
  publicUrl?: string;
  name?: string;
  socketMode?: boolean;
}

export function buildSlackManifest(opts: ManifestOptions = {}) {
  const requestUrl = `${(opts.publicUrl ?? PLACEHOLDER_HOST).replace(/\/+$/, '')}${SLACK_EVENTS_PATH}`;
  const name = opts.name ?? 'Imagine';
  return {
    _metadata: { major_version: 1, minor_version: 1 },
    display_information: {
      name,
      description: 'Make images from a prompt with Google Nano Banana models.',
      long_description:
        'Type /imagine with a prompt (flags like --ar 16:9 --res 2K --n 2 --model pro work), or /imagine alone for a form with reference images, ' +
        'or mention @' + name + ' with a prompt and images attached. ' +
        'Results come with buttons to upscale to 4K, change the aspect ratio or rerun. Each user has a daily allowance: /quota shows it.',
      background_color: '#1d1c1d',
    },
    features: {
      bot_user: { display_name: name, always_online: true },
      // Results for conversations the bot cannot post in go to the user's DM with the app.
      app_home: { home_tab_enabled: false, messages_tab_enabled: true, messages_tab_read_only_enabled: true },
      slash_commands: COMMANDS.map((c) => ({
        command: `/${c.name}`,
        url: requestUrl,
        description: c.description,
        ...(USAGE_HINTS[c.name] ? { usage_hint: USAGE_HINTS[c.name]!() } : {}),
        should_escape: false,
      })),
      shortcuts: [
        {
          name: IMAGINE_SHORTCUT_NAME,
          type: 'message',
          callback_id: IMAGINE_SHORTCUT_CALLBACK_ID,
          description: "Make new images using this message's images as references",
        },
      ],
    },
    oauth_config: { scopes: { bot: [...BOT_SCOPES] } },
    settings: {
      event_subscriptions: { request_url: requestUrl, bot_events: [...BOT_EVENTS] },
      interactivity: { is_enabled: true, request_url: requestUrl },
      org_deploy_enabled: false,
      socket_mode_enabled: opts.socketMode ?? false,
      token_rotation_enabled: false,
    },
  };
}

const HEADER = [
  '# Slack app manifest for the /imagine bot. GENERATED by `node src/platforms/slack/manifest.ts --write`',
  '# from commands/index.ts: do not edit by hand (a test checks it).',
  '# HTTP mode: replace https://your-bot.example.com with your PUBLIC_URL.',
  '# Socket Mode: set settings.socket_mode_enabled to true (the URLs are then ignored).',
  '',
].join('\n');

export async function renderSlackManifestYaml(opts: ManifestOptions = {}): Promise<string> {
  const { stringify } = await import('yaml');
  return HEADER + stringify(buildSlackManifest(opts), { lineWidth: 0 });
}

export const MANIFEST_PATH = fileURLToPath(new URL('../../../commands/slack-manifest.yml', import.meta.url));

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const yaml = await renderSlackManifestYaml();
  if (process.argv.includes('--write')) writeFileSync(MANIFEST_PATH, yaml);
  else process.stdout.write(yaml);
}
