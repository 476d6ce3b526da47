import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LookupAddress } from 'node:dns';
import { request, type Dispatcher } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkUrlAllowed,
  createGuardedDispatcher,
  findForbiddenAddress,
  ForbiddenAddressError,
  isAllowListed,
  isPublicAddress,
} from '../../../src/engine/net-guard.ts';

describe('isPublicAddress', () => {
  it.each([
    '127.0.0.1', '127.255.0.3', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254',
    '100.64.0.1', '100.127.255.255', '0.0.0.0', '0.1.2.3', '224.0.0.1', '239.255.255.250', '255.255.255.255',
    '::1', '::', 'fe80::1', 'fe80::1%eth0', 'fc00::1', 'fd12:3456::1', 'ff02::1',
    '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:10.0.0.1', '::ffff:169.254.169.254', '64:ff9b::a9fe:a9fe', '::127.0.0.1',
    // IPv4-translated, NAT64 local-use, 6to4 and Teredo forms of loopback, private and metadata addresses
    '::ffff:0:127.0.0.1', '64:ff9b:1::a9fe:a9fe', '2002:7f00:1::1', '2002:a00:1::', '2002:a9fe:a9fe::1', '2001:0:4136:e378:8000:63bf:80ff:fffe',
  ])('refuses %s', (ip) => {
    expect(isPublicAddress(ip)).toBe(false);
  });

  it.each(['8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '192.169.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '2a00:1450:4001::200e', '2002:808:808::1'])(
    'accepts %s',
    (ip) => {
      expect(isPublicAddress(ip)).toBe(true);
    },
  );

  it('is false for things that are not IPs', () => {
    expect(isPublicAddress('example.com')).toBe(false);
    expect(isPublicAddress('999.1.1.1')).toBe(false);
  });
});

describe('isAllowListed', () => {
  it('matches host names, wildcard suffixes, IPs and CIDRs', () => {
    const allow = ['images.internal', '*.corp.example', '127.0.0.1', '10.20.0.0/16', 'fd00::/8'];
    expect(isAllowListed('IMAGES.internal', allow)).toBe(true);
    expect(isAllowListed('a.b.corp.example', allow)).toBe(true);
    expect(isAllowListed('corp.example.evil.com', allow)).toBe(false);
    expect(isAllowListed('127.0.0.1', allow)).toBe(true);
    expect(isAllowListed('127.0.0.2', allow)).toBe(false);
    expect(isAllowListed('10.20.99.1', allow)).toBe(true);
    expect(isAllowListed('10.21.0.1', allow)).toBe(false);
    expect(isAllowListed('::ffff:10.20.0.5', allow)).toBe(true);
    expect(isAllowListed('fd00::5', allow)).toBe(true);
    expect(isAllowListed('[fd00::5]', allow)).toBe(true);
  });
});

describe('checkUrlAllowed', () => {
  const refused = (url: string, allow: string[] = []) => expect(() => checkUrlAllowed(url, allow)).toThrow(ForbiddenAddressError);

  it('accepts public https URLs', () => {
    expect(() => checkUrlAllowed('https://cdn.discordapp.com/attachments/1/2/cat.png', [])).not.toThrow();
    expect(() => checkUrlAllowed('https://8.8.8.8/x.png', [])).not.toThrow();
  });

  it('refuses other schemes, non-public IP literals, localhost, single labels and credentials', () => {
    refused('http://example.com/a.png');
    refused('ftp://example.com/a.png');
    refused('file:///etc/passwd');
    refused('https://127.0.0.1/a.png');
    refused('https://[::1]/a.png');
    refused('https://[::ffff:127.0.0.1]/a.png');
    refused('https://169.254.169.254/latest/meta-data');
    refused('https://0x7f000001/a.png'); // WHATWG URL parses this to 127.0.0.1
    refused('https://localhost/a.png');
    refused('https://intranet/a.png');
    refused('https://user:pw@example.com/a.png');
    refused('not a url');
  });

  it('lets allow-listed hosts through, plain http included', () => {
    expect(() => checkUrlAllowed('http://127.0.0.1:8080/a.png', ['127.0.0.1'])).not.toThrow();
    expect(() => checkUrlAllowed('https://10.1.2.3/a.png', ['10.0.0.0/8'])).not.toThrow();
    expect(() => checkUrlAllowed('http://images.internal/a.png', ['images.internal'])).not.toThrow();
    refused('http://127.0.0.2/a.png', ['127.0.0.1']);
  });
});

describe('createGuardedDispatcher', () => {
  let server: Server;
  let port: number;
  const dispatchers: Dispatcher[] = [];
  const guarded = (allowHosts: string[], lookup?: Parameters<typeof createGuardedDispatcher>[0]['lookup']) => {
    const d = createGuardedDispatcher({ allowHosts, ...(lookup ? { lookup } : {}) });
    dispatchers.push(d);
    return d;
  };
  /** A DNS that answers every name with one address (a rebinding attacker's DNS). */
  const fakeDns = (address: string, family = 4) =>
    ((_host: string, _opts: unknown, cb: (err: null, addrs: LookupAddress[]) => void) => cb(null, [{ address, family }])) as never;

  beforeAll(async () => {
    server = createServer((_req, res) => res.end('secret internal data'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await Promise.all(dispatchers.map((d) => d.close()));
    await new Promise((r) => server.close(r));
  });

  it('refuses to connect to 127.0.0.1 without an allow-list entry', async () => {
    const err = await request(`http://127.0.0.1:${port}/`, { dispatcher: guarded([]) }).catch((e: unknown) => e);
    expect(findForbiddenAddress(err)).toBeInstanceOf(ForbiddenAddressError);
  });

  it('refuses a host name that resolves to a private address (DNS rebinding), checked at connect time', async () => {
    const err = await request(`http://images.example.com:${port}/`, { dispatcher: guarded([], fakeDns('127.0.0.1')) }).catch((e: unknown) => e);
    expect(findForbiddenAddress(err)?.message).toMatch(/non-public address 127\.0\.0\.1/);
    const viaLocalhost = await request(`http://localhost:${port}/`, { dispatcher: guarded([]) }).catch((e: unknown) => e);
    expect(findForbiddenAddress(viaLocalhost)).toBeInstanceOf(ForbiddenAddressError);
  });

  it('connects when the IP, the CIDR or the host name is allow-listed', async () => {
    for (const [url, allow, dns] of [
      [`http://127.0.0.1:${port}/`, ['127.0.0.1'], undefined],
      [`http://127.0.0.1:${port}/`, ['127.0.0.0/8'], undefined],
      [`http://images.example.com:${port}/`, ['images.example.com'], fakeDns('127.0.0.1')],
      [`http://images.example.com:${port}/`, ['127.0.0.1'], fakeDns('127.0.0.1')],
    ] as const) {
      const res = await request(url, { dispatcher: guarded([...allow], dns) });
      expect(await res.body.text()).toBe('secret internal data');
    }
  });
});
