export * from './server.ts';
export { snowflake, snowflakeTime } from './snowflake.ts';
