import { MockAgent } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config.ts';
import { createProviderClients, RunbaseClient, RunblobClient, keyIdOf, withRetry, isRetryable } from '../../../src/providers/index.ts';
import { memoryLogger, startScriptServer, type ScriptServer } from './script-server.ts';

const servers: ScriptServer[] = [];
const toClose: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(toClose.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

describe('createProviderClients', () => {
  it('makes one client per configured key, pointed at the configured URLs', async () => {
    const rb = await startScriptServer(() => ({ json: { id: 'run_1', status: 'processing', costUsd: 1 } }));
    const bl = await startScriptServer(() => ({ json: { task_uuid: 'u1', status: 'pending', result_image_url: null, message: null } }));
    servers.push(rb, bl);
    const config = parseConfig({
      RUNBASE_API_KEY: 'sk-runbase-key-123456',
      RUNBASE_API_URL: `${rb.url}/api/v1`,
      RUNBLOB_API_KEY: 'runblob-key-abcdef',
      RUNBLOB_API_URL: bl.url,
    });
    const { log, lines } = memoryLogger();
    const clients = createProviderClients(config, { log });
    toClose.push(...clients);
    expect(clients.map((c) => c.name)).toEqual(['runbase', 'runblob']);
    expect(clients[0]).toBeInstanceOf(RunbaseClient);
    expect(clients[1]).toBeInstanceOf(RunblobClient);
    expect(clients[0]!.keyId).toBe(keyIdOf('sk-runbase-key-123456'));
    expect(clients[1]!.keyId).toBe(keyIdOf('runblob-key-abcdef'));

    expect((await clients[0]!.getTask('run_1')).status).toBe('running');
    expect((await clients[1]!.getTask('u1')).status).toBe('pending');
    expect(rb.requests[0]).toMatchObject({ url: '/api/v1/runs/run_1' });
    expect(rb.requests[0]!.headers.authorization).toBe('Bearer sk-runbase-key-123456');
    expect(bl.requests[0]!.headers.authorization).toBe('Bearer runblob-key-abcdef');
    expect(lines()).not.toContain('sk-runbase-key-123456');
  });

  it('skips providers without a key', () => {
    const { log } = memoryLogger();
    expect(createProviderClients(parseConfig({}), { log })).toEqual([]);
    const only = createProviderClients(parseConfig({ RUNBLOB_API_KEY: 'k-123456' }), { log });
    toClose.push(...only);
    expect(only.map((c) => c.name)).toEqual(['runblob']);
  });

  it('uses the documented base URLs when none is configured', async () => {
    const agent = new MockAgent();
    agent.disableNetConnect();
    toClose.push(agent);
    // Only the documented origins and paths answer (docs/providers.md); any other URL fails the call.
    agent
      .get('https://runbase.net')
      .intercept({ path: '/api/v1/runs/run_1', method: 'GET' })
      .reply(200, { id: 'run_1', status: 'processing' });
    agent
      .get('https://platform.runblob.io')
      .intercept({ path: '/v1/gemini/generations/u1', method: 'GET' })
      .reply(200, { task_uuid: 'u1', status: 'pending', result_image_url: null, message: null });
    const { log } = memoryLogger();
    const clients = createProviderClients(parseConfig({ RUNBASE_API_KEY: 'sk-runbase-key-123456', RUNBLOB_API_KEY: 'runblob-key-abcdef' }), {
      log,
      dispatcher: agent,
      maxAttempts: 1,
    });
    toClose.push(...clients);
    expect((await clients[0]!.getTask('run_1')).status).toBe('running');
    expect((await clients[1]!.getTask('u1')).status).toBe('pending');
    agent.assertNoPendingInterceptors();
  });

  it('re-exports the retry policy for the engine', () => {
    expect(typeof withRetry).toBe('function');
    expect(isRetryable(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }), 'billable')).toBe(true);
  });
});
