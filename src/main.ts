/**
 * Entry point (`npm start`): load .env, validate the environment, start the bot, stop cleanly on
 * SIGTERM/SIGINT: jobs in flight stay in the store, handed over to the other processes sharing
 * it at once, else resumed on the next start (docs/architecture.md "Scaling out").
 */
import { ConfigError, loadDotEnv, parseConfig } from './config.ts';
import { botLogger, startBot } from './app.ts';

loadDotEnv();
let config;
try {
  config = parseConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(err.message);
    process.exit(1);
  }
  throw err;
}
const log = botLogger(config);
try {
  const bot = await startBot(config, { log });
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    bot.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(err.message);
    process.exit(1);
  }
  log.fatal({ err }, 'failed to start');
  process.exit(1);
}
