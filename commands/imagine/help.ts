/**
 * /imagine's flag help (Slack's `/imagine help`, the CLI's --help), derived from the option
 * definitions and the configured models.
 */
import { RESOLUTIONS, type ModelSpec } from '../../src/engine/models.ts';
import type { Platform } from '../../src/engine/request.ts';
import { offeredRatios, RATIO_LABELS, type OptionDefinition } from '../options.ts';
import {
  DEFAULT_COUNT,
  DEFAULT_RATIO,
  DEFAULT_RATIO_WITH_REFERENCES,
  DEFAULT_RESOLUTION,
  IMAGINE_OPTIONS,
  IMAGINE_VALUE_OPTION_NAMES,
  REF_FLAG,
} from './definition.ts';

/** Explains every flag with examples (Slack's `/imagine help`, the CLI's --help). Plain text. */
export function helpText(models: readonly ModelSpec[], platform: Platform = 'slack'): string {
  const lines: string[] = [
    'Write what you want to see, then add flags anywhere (usually at the end):',
    '  /imagine a red fox in the snow, watercolor --ar 16:9 --res 2K --n 2',
    '',
    ...flagHelpLines(models, platform),
  ];
  lines.push(`${flagNames(REF_FLAG.flags)} <link>: ${REF_FLAG.description}. Example: ${REF_FLAG.example}`);
  lines.push('');
  lines.push('Values are not case-sensitive; --ar=16:9 works too, and so does —ar (a phone\'s long dash).');
  lines.push(
    `Defaults: ${DEFAULT_RATIO} (${DEFAULT_RATIO_WITH_REFERENCES} with reference images), ${DEFAULT_RESOLUTION}, ${DEFAULT_COUNT} image${DEFAULT_COUNT === 1 ? '' : 's'}.`,
  );
  return lines.join('\n');
}

const flagNames = (flags: readonly string[]) => flags.map((f) => `--${f}`).join(' / ');

/**
 * One line per value flag a platform offers (names and aliases, description, example), the
 * model and ratio lines listing the choices: the part of the help every platform shares
 * (`--ref` is not included: the CLI's takes local files too).
 */
export function flagHelpLines(models: readonly ModelSpec[], platform: Platform): string[] {
  const lines: string[] = [];
  for (const name of IMAGINE_VALUE_OPTION_NAMES) {
    const def: OptionDefinition = IMAGINE_OPTIONS[name];
    if (!def.flags || (def.platforms && !def.platforms.includes(platform))) continue;
    if (name === 'creativity' && !models.some((m) => m.creativity)) continue;
    lines.push(`${flagNames(def.flags)}: ${def.description}. Example: ${def.example ?? ''}`.trimEnd());
    if (name === 'model') {
      // Two models may share an alias (the first configured wins), so name each by one it owns.
      const claimed = new Set<string>();
      for (const m of models) {
        const own = m.aliases.find((a) => !claimed.has(a)) ?? m.key;
        m.aliases.forEach((a) => claimed.add(a));
        lines.push(`    ${m.label}: --model ${own}${modelNote(m)}`);
      }
    }
    if (name === 'ratio') {
      lines.push(`    ${offeredRatios(models).map((r) => RATIO_LABELS[r]).join(', ')}. Not every model takes every ratio.`);
    }
  }
  return lines;
}

function modelNote(m: ModelSpec): string {
  const parts = [m.resolutions.length < RESOLUTIONS.length ? `${m.resolutions.join('/')} only` : ''];
  if (m.creativity) parts.push('takes --cr');
  const text = parts.filter(Boolean).join(', ');
  return text ? ` (${text})` : '';
}
