/** Discord snowflakes: ms since the Discord epoch << 22, plus a counter (https://discord.com/developers/docs/reference#snowflakes). */
export const DISCORD_EPOCH_MS = 1_420_070_400_000;

let increment = 0n;

export function snowflake(atMs: number = Date.now()): string {
  increment = (increment + 1n) & 0xfffn;
  return ((BigInt(Math.floor(atMs) - DISCORD_EPOCH_MS) << 22n) | (1n << 17n) | increment).toString();
}

export function snowflakeTime(id: string): number {
  return Number(BigInt(id) >> 22n) + DISCORD_EPOCH_MS;
}

/** A fresh snowflake whose guild's events go to shard `shardId` of `count`: `(id >> 22) % count` (docs/discord.md "Sharding"). */
export function snowflakeOnShard(shardId: number, count: number, atMs: number = Date.now()): string {
  const t = Math.floor(atMs) - DISCORD_EPOCH_MS;
  return snowflake(DISCORD_EPOCH_MS + t - (t % count) + shardId);
}
