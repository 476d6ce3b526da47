export * from './server.ts';
export { INTERACTIONS_USER_AGENT, signInteraction, type EndpointAnswer, type EndpointPostOptions } from './interactions-endpoint.ts';
export { snowflake, snowflakeOnShard, snowflakeTime } from './snowflake.ts';
export { shardOf, type ShardPair } from './gateway.ts';
