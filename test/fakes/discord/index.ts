export * from './server.ts';
export { INTERACTIONS_USER_AGENT, signInteraction, type EndpointAnswer, type EndpointPostOptions } from './interactions-endpoint.ts';
export { snowflake, snowflakeTime } from './snowflake.ts';
