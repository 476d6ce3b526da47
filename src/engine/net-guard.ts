/**
 * The SSRF guard for URLs users give the bot (reference images). A user-given URL must be https
 * and reach a public address: loopback, private, link-local, CGNAT, unique-local, multicast and
 * other special ranges are refused, and so are IPv6 forms carrying such an IPv4 address
 * (IPv4-mapped, -compatible and -translated, NAT64, 6to4, Teredo). `FETCH_ALLOW_HOSTS`
 * (hostnames, IPs or CIDRs) exempts hosts for tests and private deployments; an allow-listed host
 * may also use plain http.
 *
 * The address check happens inside the connection's DNS lookup (createGuardedDispatcher), on the
 * very address the socket then connects to, so DNS rebinding (public answer when checked, private
 * answer when connecting) cannot slip through; IP-literal hosts, which skip DNS, are checked in
 * the connector before connecting. checkUrlAllowed is the cheap up-front check of scheme and host.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { isIP } from 'node:net';
import { Agent, buildConnector, type Dispatcher } from 'undici';

/** Raised when a URL or a resolved address is not allowed. Carries no user text: callers map it. */
export class ForbiddenAddressError extends Error {
  readonly code = 'ERR_FORBIDDEN_ADDRESS';
  readonly host: string;
  constructor(host: string, reason: string) {
    super(`${host}: ${reason}`);
    this.name = 'ForbiddenAddressError';
    this.host = host;
  }
}

/** Finds a ForbiddenAddressError in an error's cause chain (undici wraps connector errors). */
export function findForbiddenAddress(err: unknown, depth = 0): ForbiddenAddressError | undefined {
  if (err instanceof ForbiddenAddressError) return err;
  if (depth > 4 || !(err instanceof Error)) return undefined;
  const nested = [(err as { cause?: unknown }).cause, ...((err as { errors?: unknown[] }).errors ?? [])];
  for (const e of nested) {
    const found = findForbiddenAddress(e, depth + 1);
    if (found) return found;
  }
  return undefined;
}

type Bytes = number[];

function parseIPv4(ip: string): Bytes | undefined {
  const parts = ip.split('.');
  if (parts.length !== 4) return undefined;
  const bytes = parts.map((p) => (/^\d{1,3}$/.test(p) ? Number(p) : NaN));
  return bytes.every((b) => b >= 0 && b <= 255) ? bytes : undefined;
}

function parseIPv6(input: string): Bytes | undefined {
  let ip = input.replace(/^\[|\]$/g, '');
  const zone = ip.indexOf('%');
  if (zone >= 0) ip = ip.slice(0, zone);
  if (isIP(ip) !== 6) return undefined;
  let tail: Bytes = [];
  const lastColon = ip.lastIndexOf(':');
  if (ip.includes('.', lastColon)) {
    const v4 = parseIPv4(ip.slice(lastColon + 1));
    if (!v4) return undefined;
    tail = v4;
    ip = ip.slice(0, lastColon + 1) + '0:0';
  }
  const [head = '', rest] = ip.split('::') as [string, string | undefined];
  const groups = (s: string) => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const h = groups(head);
  const r = rest === undefined ? [] : groups(rest);
  const fill = rest === undefined ? [] : new Array<number>(8 - h.length - r.length).fill(0);
  const all = [...h, ...fill, ...r];
  if (all.length !== 8) return undefined;
  const bytes = all.flatMap((g) => [(g >> 8) & 0xff, g & 0xff]);
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

/** 4 bytes for IPv4, 16 for IPv6, undefined when not an IP literal. */
function parseIp(ip: string): Bytes | undefined {
  return parseIPv4(ip) ?? parseIPv6(ip);
}

interface Cidr {
  bytes: Bytes;
  prefix: number;
}

function parseCidr(text: string): Cidr | undefined {
  const [addr = '', len] = text.split('/');
  const bytes = parseIp(addr);
  if (!bytes) return undefined;
  const max = bytes.length * 8;
  const prefix = len === undefined ? max : /^\d+$/.test(len) ? Number(len) : NaN;
  if (!(prefix >= 0 && prefix <= max)) return undefined;
  return { bytes, prefix };
}

function inCidr(bytes: Bytes, cidr: Cidr): boolean {
  if (bytes.length !== cidr.bytes.length) {
    // An IPv4-mapped IPv6 address matches IPv4 ranges.
    const v4 = bytes.length === 16 ? embeddedIPv4(bytes) : undefined;
    return v4 !== undefined && cidr.bytes.length === 4 && inCidr(v4, cidr);
  }
  let bits = cidr.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if (((bytes[i] ?? 0) & mask) !== ((cidr.bytes[i] ?? 0) & mask)) return false;
  }
  return true;
}

const cidrs = (list: string[]) => list.map((c) => parseCidr(c) as Cidr);

/** IPv4 ranges that are not public unicast (RFC 6890 and friends). */
const BLOCKED_V4 = cidrs([
  '0.0.0.0/8', // "this network"
  '10.0.0.0/8',
  '100.64.0.0/10', // CGNAT
  '127.0.0.0/8',
  '169.254.0.0/16', // link-local, cloud metadata
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.0.2.0/24',
  '192.88.99.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved, broadcast
]);

const BLOCKED_V6 = cidrs([
  '::/128',
  '::1/128',
  '100::/64', // discard
  '2001:db8::/32', // documentation
  'fc00::/7', // unique local
  'fe80::/10', // link-local
  'fec0::/10', // site-local (deprecated)
  'ff00::/8', // multicast
]);

/** The IPv4 address inside IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::/96) forms. */
function embeddedIPv4(b: Bytes): Bytes | undefined {
  const zeros = (from: number, to: number) => b.slice(from, to).every((x) => x === 0);
  if (zeros(0, 10) && b[10] === 0xff && b[11] === 0xff) return b.slice(12);
  if (zeros(0, 12) && !(zeros(12, 15) && (b[15] ?? 0) <= 1)) return b.slice(12);
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zeros(4, 12)) return b.slice(12);
  return undefined;
}

/**
 * IPv4 addresses carried inside IPv6 forms that a tunnel or translator may route to that IPv4
 * address: IPv4-translated (::ffff:0:a.b.c.d), NAT64 local-use (64:ff9b:1::/48, last 32 bits),
 * 6to4 (2002:AABB:CCDD::/48) and Teredo (2001:0::/32, client address inverted in the last 32 bits).
 */
function tunnelledIPv4(b: Bytes): Bytes[] {
  const zeros = (from: number, to: number) => b.slice(from, to).every((x) => x === 0);
  const found: Bytes[] = [];
  if (zeros(0, 8) && b[8] === 0xff && b[9] === 0xff && zeros(10, 12)) found.push(b.slice(12));
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && b[4] === 0x00 && b[5] === 0x01) found.push(b.slice(12));
  if (b[0] === 0x20 && b[1] === 0x02) found.push(b.slice(2, 6));
  if (b[0] === 0x20 && b[1] === 0x01 && b[2] === 0x00 && b[3] === 0x00) found.push(b.slice(12).map((x) => x ^ 0xff));
  return found;
}

/** True when `ip` is a public unicast address (false for non-IP strings). */
export function isPublicAddress(ip: string): boolean {
  const bytes = parseIp(ip);
  if (!bytes) return false;
  const publicV4 = (v4: Bytes) => !BLOCKED_V4.some((c) => inCidr(v4, c));
  if (bytes.length === 4) return publicV4(bytes);
  const v4 = embeddedIPv4(bytes);
  if (v4) return publicV4(v4);
  if (!tunnelledIPv4(bytes).every(publicV4)) return false;
  return !BLOCKED_V6.some((c) => inCidr(bytes, c));
}

const normalizeHost = (host: string) => host.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase();

/**
 * Whether `host` (a hostname or an IP) matches an allow-list entry: a hostname (exact, or any
 * subdomain with a leading "*." or "."), an IP, or a CIDR.
 */
export function isAllowListed(host: string, allowHosts: readonly string[]): boolean {
  const h = normalizeHost(host);
  const ip = parseIp(h);
  for (const raw of allowHosts) {
    const entry = normalizeHost(raw.trim());
    if (!entry) continue;
    const cidr = parseCidr(entry);
    if (cidr) {
      if (ip && inCidr(ip, cidr)) return true;
      continue;
    }
    if (h === entry) return true;
    const suffix = entry.startsWith('*.') ? entry.slice(1) : entry.startsWith('.') ? entry : undefined;
    if (suffix && h.endsWith(suffix)) return true;
  }
  return false;
}

/**
 * Throws ForbiddenAddressError unless `url` is https (or http to an allow-listed host), carries no
 * credentials, and does not name a non-public IP or localhost (unless allow-listed). Hostnames are
 * resolved and checked later, at connection time, by the guarded dispatcher.
 */
export function checkUrlAllowed(url: string, allowHosts: readonly string[]): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ForbiddenAddressError(url, 'not a valid URL');
  }
  const host = normalizeHost(u.hostname);
  const allowed = isAllowListed(host, allowHosts);
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && allowed)) {
    throw new ForbiddenAddressError(host || url, `scheme ${u.protocol} is not allowed (https only)`);
  }
  if (u.username || u.password) throw new ForbiddenAddressError(host, 'credentials in URLs are not allowed');
  if (allowed) return;
  if (parseIp(host)) {
    if (!isPublicAddress(host)) throw new ForbiddenAddressError(host, 'not a public address');
    return;
  }
  if (host === 'localhost' || host.endsWith('.localhost') || !host.includes('.')) {
    throw new ForbiddenAddressError(host, 'not a public host name');
  }
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** A dns.lookup replacement that refuses non-public answers (unless the host or address is allow-listed). */
export function createGuardedLookup(allowHosts: readonly string[], resolve: typeof dnsLookup = dnsLookup) {
  return (hostname: string, options: LookupOptions, callback: LookupCallback): void => {
    resolve(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) {
        callback(err, '');
        return;
      }
      const list = addresses as LookupAddress[];
      const hostAllowed = isAllowListed(hostname, allowHosts);
      const bad = hostAllowed ? undefined : list.find((a) => !isPublicAddress(a.address) && !isAllowListed(a.address, allowHosts));
      if (bad) {
        callback(new ForbiddenAddressError(hostname, `resolves to non-public address ${bad.address}`) as NodeJS.ErrnoException, '');
        return;
      }
      if (list.length === 0) {
        callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), '');
        return;
      }
      if (options.all) callback(null, list);
      else callback(null, (list[0] as LookupAddress).address, (list[0] as LookupAddress).family);
    });
  };
}

export interface GuardedDispatcherOptions {
  allowHosts: readonly string[];
  /** Default 10 s. */
  connectTimeoutMs?: number;
  /** Default 30 s (time to first byte). */
  headersTimeoutMs?: number;
  /** Default 30 s (gap between body chunks). */
  bodyTimeoutMs?: number;
  /** Injectable DNS for tests. */
  lookup?: typeof dnsLookup;
}

/**
 * An undici Agent whose every connection goes through the guard: IP-literal hosts are checked
 * before connecting, host names are resolved by the guarded lookup and the socket connects to the
 * checked address. Use it for every fetch of a user-given URL (it does not follow redirects;
 * callers re-check each Location with checkUrlAllowed).
 */
export function createGuardedDispatcher(opts: GuardedDispatcherOptions): Dispatcher {
  const allowHosts = [...opts.allowHosts];
  const connectTimeout = opts.connectTimeoutMs ?? 10_000;
  const base = buildConnector({ timeout: connectTimeout, lookup: createGuardedLookup(allowHosts, opts.lookup) } as buildConnector.BuildOptions);
  const connect: buildConnector.connector = (options, callback) => {
    const host = normalizeHost(options.hostname);
    if (isIP(host) && !isPublicAddress(host) && !isAllowListed(host, allowHosts)) {
      callback(new ForbiddenAddressError(host, 'not a public address'), null);
      return;
    }
    base(options, callback);
  };
  return new Agent({
    connect,
    headersTimeout: opts.headersTimeoutMs ?? 30_000,
    bodyTimeout: opts.bodyTimeoutMs ?? 30_000,
  });
}
