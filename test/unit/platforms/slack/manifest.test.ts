import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, test } from 'vitest';
import { COMMANDS } from '../../../../commands/index.ts';
import {
  IMAGINE_SHORTCUT_CALLBACK_ID,
  MANIFEST_PATH,
  SLACK_EVENTS_PATH,
  buildSlackManifest,
  renderSlackManifestYaml,
} from '../../../../src/platforms/slack/manifest.ts';

describe('commands/slack-manifest.yml', () => {
  test('is exactly what the generator makes from the command definitions (run `node src/platforms/slack/manifest.ts --write`)', async () => {
    expect(readFileSync(MANIFEST_PATH, 'utf8')).toBe(await renderSlackManifestYaml());
  });

  test('declares every command, the message shortcut, the scopes and one request URL for events and interactivity', () => {
    const m = parse(readFileSync(MANIFEST_PATH, 'utf8')) as ReturnType<typeof buildSlackManifest>;
    expect(m.features.slash_commands.map((c) => c.command)).toEqual(COMMANDS.map((c) => `/${c.name}`));
    for (const c of m.features.slash_commands) {
      expect(c.url.endsWith(SLACK_EVENTS_PATH)).toBe(true);
      expect(c.description.length).toBeLessThanOrEqual(2000);
      expect(c.should_escape).toBe(false);
    }
    expect(m.features.slash_commands[0]!.usage_hint).toContain('--ar 16:9');
    expect(m.features.shortcuts).toEqual([expect.objectContaining({ type: 'message', callback_id: IMAGINE_SHORTCUT_CALLBACK_ID, name: 'Imagine with these images' })]);
    expect(m.features.shortcuts[0]!.description.length).toBeLessThanOrEqual(150);
    expect(m.oauth_config.scopes.bot).toEqual(expect.arrayContaining(['commands', 'chat:write', 'files:read', 'files:write']));
    expect(m.settings.interactivity).toEqual({ is_enabled: true, request_url: m.features.slash_commands[0]!.url });
    expect(m.display_information.long_description.length).toBeGreaterThanOrEqual(175);
  });

  test('takes a public URL and Socket Mode', () => {
    const m = buildSlackManifest({ publicUrl: 'https://bot.example.org/', socketMode: true });
    expect(m.settings.interactivity.request_url).toBe('https://bot.example.org/slack/events');
    expect(m.settings.socket_mode_enabled).toBe(true);
  });
});
