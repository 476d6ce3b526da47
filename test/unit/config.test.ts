import { describe, expect, it } from 'vitest';
import { ceilingsOf, ConfigError, configuredProviders, parseConfig, secretsOf } from '../../src/config.ts';

describe('parseConfig', () => {
  it('applies the documented defaults to an empty environment', () => {
    const c = parseConfig({});
    expect(c.DISCORD_API_URL).toBe('https://discord.com/api');
    expect(c.SLACK_API_URL).toBe('https://slack.com/api/');
    expect(c.RUNBASE_API_URL).toBe('https://runbase.net/api/v1');
    expect(c.RUNBLOB_API_URL).toBe('https://platform.runblob.io');
    expect(c.STORE_URL).toBe('sqlite://data/imagine.sqlite');
    expect(c.PORT).toBe(3000);
    expect(c.LOG_LEVEL).toBe('info');
    expect(c.QUOTA_DAILY_UNITS).toBe(20);
    expect([c.QUOTA_COST_1K, c.QUOTA_COST_2K, c.QUOTA_COST_4K]).toEqual([1, 2, 4]);
    expect(c.SPEND_CAP_DAILY_USD).toBeUndefined();
    expect(c.JOB_DEADLINE_SECONDS).toBe(600);
    expect(c.FETCH_ALLOW_HOSTS).toEqual([]);
  });

  it('parses lists, numbers and treats empty strings as unset', () => {
    const c = parseConfig({
      QUOTA_EXEMPT_USERS: ' 123, slack:U1 ,,',
      FETCH_ALLOW_HOSTS: '127.0.0.1,10.0.0.0/8',
      PORT: '0',
      SPEND_CAP_DAILY_USD: '12.5',
      PUBLIC_URL: '',
      RUNBASE_API_KEY: 'sk-abc',
    });
    expect(c.QUOTA_EXEMPT_USERS).toEqual(['123', 'slack:U1']);
    expect(c.FETCH_ALLOW_HOSTS).toEqual(['127.0.0.1', '10.0.0.0/8']);
    expect(c.PORT).toBe(0);
    expect(c.SPEND_CAP_DAILY_USD).toBe(12.5);
    expect(c.PUBLIC_URL).toBeUndefined();
    expect([...configuredProviders(c)]).toEqual(['runbase']);
  });

  it('reports every problem at once, naming each variable', () => {
    let error: unknown;
    try {
      parseConfig({
        PORT: 'eighty',
        QUOTA_DAILY_UNITS: '-1',
        STORE_URL: 'postgres://x',
        LOG_LEVEL: 'loud',
        DISCORD_API_URL: 'not a url',
        DISCORD_TOKEN: 'tok',
        SLACK_BOT_TOKEN: 'xoxb-1',
        RUNBASE_API_KEY: 'pk-wrong',
        SPEND_CAP_DAILY_USD: '0',
        DISCORD_PUBLIC_KEY: 'not-hex',
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    for (const name of [
      'PORT',
      'QUOTA_DAILY_UNITS',
      'STORE_URL',
      'LOG_LEVEL',
      'DISCORD_API_URL',
      'DISCORD_APPLICATION_ID',
      'SLACK_SIGNING_SECRET',
      'RUNBASE_API_KEY',
      'SPEND_CAP_DAILY_USD',
      'DISCORD_PUBLIC_KEY',
    ]) {
      expect(problems).toContain(name);
    }
    expect((error as ConfigError).message).toMatch(/^Invalid configuration:/);
  });

  it("accepts Discord's public key as the portal shows it (64 hex characters)", () => {
    const key = 'ab'.repeat(32);
    expect(parseConfig({ DISCORD_TOKEN: 't', DISCORD_APPLICATION_ID: '1', DISCORD_PUBLIC_KEY: ` ${key} ` }).DISCORD_PUBLIC_KEY).toBe(key);
    expect(() => parseConfig({ DISCORD_PUBLIC_KEY: key.slice(2) })).toThrow(/DISCORD_PUBLIC_KEY/);
  });

  it('takes METRICS_TOKEN as a bearer token, refuses one that cannot be sent in the header, and redacts it', () => {
    expect(parseConfig({}).METRICS_TOKEN).toBeUndefined();
    const c = parseConfig({ METRICS_TOKEN: ' s3cret-Token_1.x~+/= ' });
    expect(c.METRICS_TOKEN).toBe('s3cret-Token_1.x~+/=');
    expect(secretsOf(c)).toContain('s3cret-Token_1.x~+/=');
    for (const bad of ['two words', 'tøken', 'a"b']) {
      expect(() => parseConfig({ METRICS_TOKEN: bad })).toThrow(/METRICS_TOKEN: must be a bearer token/);
    }
  });

  it('DISCORD_SHARDS: auto by default, or a positive whole number; anything else is a readable error', () => {
    expect(parseConfig({}).DISCORD_SHARDS).toBe('auto');
    expect(parseConfig({ DISCORD_SHARDS: '' }).DISCORD_SHARDS).toBe('auto');
    expect(parseConfig({ DISCORD_SHARDS: ' AUTO ' }).DISCORD_SHARDS).toBe('auto');
    expect(parseConfig({ DISCORD_SHARDS: '2' }).DISCORD_SHARDS).toBe(2);
    expect(parseConfig({ DISCORD_SHARDS: '16 ' }).DISCORD_SHARDS).toBe(16);
    for (const bad of ['0', '-2', '1.5', 'two', '2,3', '99999999999999999999']) {
      let error: unknown;
      try {
        parseConfig({ DISCORD_SHARDS: bad });
      } catch (err) {
        error = err;
      }
      expect(error, bad).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).problems, bad).toEqual([expect.stringMatching(/^DISCORD_SHARDS: (must be "auto" or a whole number of shards \(1 or more\)|is too large)$/)]);
    }
  });

  it('accepts Socket Mode without a signing secret', () => {
    expect(() => parseConfig({ SLACK_BOT_TOKEN: 'xoxb-1', SLACK_APP_TOKEN: 'xapp-1' })).not.toThrow();
  });

  it('reads the operator’s governance ceilings, and refuses a maximum below the daily default', () => {
    expect(ceilingsOf(parseConfig({}))).toEqual({ defaultDailyUnits: 20, maxDailyUnits: 100, allowUnlimited: false, maxServerSpendCapUsd: undefined, globalSpendCapUsd: undefined });
    const c = parseConfig({ QUOTA_MAX_DAILY_UNITS: '40', QUOTA_ALLOW_UNLIMITED: 'TRUE', SERVER_SPEND_CAP_MAX_USD: '2.5', SPEND_CAP_DAILY_USD: '10', SLACK_ADMIN_USERS: 'U1, U2' });
    expect(ceilingsOf(c)).toEqual({ defaultDailyUnits: 20, maxDailyUnits: 40, allowUnlimited: true, maxServerSpendCapUsd: 2.5, globalSpendCapUsd: 10 });
    expect(c.SLACK_ADMIN_USERS).toEqual(['U1', 'U2']);
    expect(parseConfig({ QUOTA_ALLOW_UNLIMITED: 'no' }).QUOTA_ALLOW_UNLIMITED).toBe(false);
    const problems = (env: Record<string, string>) => {
      try {
        parseConfig(env);
      } catch (err) {
        return (err as ConfigError).problems;
      }
      return [];
    };
    expect(problems({ QUOTA_DAILY_UNITS: '30', QUOTA_MAX_DAILY_UNITS: '25' })).toEqual(['QUOTA_MAX_DAILY_UNITS: must be at least QUOTA_DAILY_UNITS (30), got 25']);
    expect(problems({ QUOTA_DAILY_UNITS: '150' })).toEqual(['QUOTA_MAX_DAILY_UNITS: must be at least QUOTA_DAILY_UNITS (150), got 100']);
    expect(problems({ QUOTA_ALLOW_UNLIMITED: 'maybe' })).toEqual(['QUOTA_ALLOW_UNLIMITED: must be true or false']);
    expect(problems({ SERVER_SPEND_CAP_MAX_USD: '-1' })).toHaveLength(1);
  });
});
