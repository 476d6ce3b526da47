/** The quota command's handler: the requester's allowance today, in words both platforms show. */
import type { EngineApi } from '../src/engine/api.ts';
import type { Requester } from '../src/engine/request.ts';
import { PLAIN_FORMAT, quotaText, type TextFormat } from './render.ts';

export async function quotaReply(
  engine: Pick<EngineApi, 'quota'>,
  requester: Requester,
  fmt: TextFormat = PLAIN_FORMAT,
): Promise<string> {
  return quotaText(await engine.quota(requester), fmt);
}
