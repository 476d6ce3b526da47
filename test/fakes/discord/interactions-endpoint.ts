/**
 * Discord's side of the HTTP interactions endpoint: instead of INTERACTION_CREATE on the gateway,
 * Discord POSTs each interaction to the app's Interactions Endpoint URL, signed with the
 * application's Ed25519 key (`X-Signature-Ed25519` over `X-Signature-Timestamp + raw body`), and
 * the app answers the request itself with the interaction response (200, JSON, within 3 s).
 * Saving the URL in the developer portal first checks the endpoint: a signed PING must be answered
 * `{"type": 1}` and requests with bad signatures must be refused 401.
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { Agent, request } from 'undici';
import { snowflake } from './snowflake.ts';

export const INTERACTIONS_USER_AGENT = 'Discord-Interactions/1.0 (+https://discord.com)';

/** X-Signature-Ed25519: the Ed25519 signature of the timestamp's bytes followed by the body's, in hex. */
export function signInteraction(privateKey: KeyObject, timestamp: string, body: string | Buffer): string {
  return sign(null, Buffer.concat([Buffer.from(timestamp, 'utf8'), Buffer.from(body)]), privateKey).toString('hex');
}

export interface EndpointPostOptions {
  /** 'invalid': a well-formed signature by the application's key, of other bytes; 'missing': no X-Signature-Ed25519. Default 'valid'. */
  signature?: 'valid' | 'invalid' | 'missing';
  /** X-Signature-Timestamp; default now, in unix seconds. */
  timestamp?: string;
  /** Signs the body, then sends it with a trailing space: the same JSON in other bytes, which only an app checking the raw body refuses. */
  tamperBody?: boolean;
}

export interface EndpointAnswer {
  status: number;
  body: string;
}

/** How an interaction's delivery ended: the app's JSON answer (status 200), or why there is none. */
export type EndpointDelivery = { status: 200; json: unknown } | { status?: number; failure: string };

/** The app's answer in an error message: enough to see what it said, not a whole page. */
function excerpt(body: string): string {
  return body.length > 200 ? `${body.slice(0, 200)}…` : body || '(empty body)';
}

/** Discord's HTTP client for one application's Interactions Endpoint URL. */
export class InteractionsEndpointClient {
  /** The raw 32-byte public key as the developer portal shows it (64 lowercase hex characters). */
  readonly publicKeyHex: string;
  private readonly privateKey: KeyObject;
  private readonly timeoutMs: number;
  private readonly agent = new Agent();
  private readonly closing = new AbortController();

  /** `timeoutMs`: how long Discord waits for an answer (the first-response deadline). */
  constructor(timeoutMs: number) {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    this.privateKey = privateKey;
    // An Ed25519 SubjectPublicKeyInfo is a fixed 12-byte DER header followed by the 32 key bytes.
    this.publicKeyHex = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('hex');
    this.timeoutMs = timeoutMs;
  }

  /**
   * POSTs `payload` signed (or mis-signed) as `opts` says and returns the app's answer as is.
   * Rejects when there is no answer within the deadline or the connection fails.
   */
  post(url: string, payload: object, opts: EndpointPostOptions = {}): Promise<EndpointAnswer> {
    return this.send(url, payload, opts, AbortSignal.timeout(this.timeoutMs));
  }

  /** Delivers an interaction: the app's answer counts when it is 200 with a JSON body, in time. */
  async deliver(url: string, payload: object): Promise<EndpointDelivery> {
    const deadline = AbortSignal.timeout(this.timeoutMs);
    let answer: EndpointAnswer;
    try {
      answer = await this.send(url, payload, {}, deadline);
    } catch (err) {
      if (deadline.aborted) return { failure: `no answer within ${this.timeoutMs} ms` };
      return { failure: `request failed: ${(err as Error).message}` };
    }
    if (answer.status !== 200) return { status: answer.status, failure: `answered ${answer.status}: ${excerpt(answer.body)}` };
    try {
      return { status: 200, json: JSON.parse(answer.body) };
    } catch {
      return { status: 200, failure: `answer is not JSON: ${excerpt(answer.body)}` };
    }
  }

  /** What saving the URL in the developer portal checks; throws saying which check failed. */
  async verify(url: string, applicationId: string): Promise<void> {
    const ping = { id: snowflake(), application_id: applicationId, type: 1, token: `ping.${snowflake()}`, version: 1, entitlements: [] };
    const pong = await this.deliver(url, ping);
    if ('failure' in pong || (pong.json as { type?: unknown } | null)?.type !== 1) {
      const said = 'failure' in pong ? pong.failure : `answered 200: ${excerpt(JSON.stringify(pong.json))}`;
      throw new Error(`Interactions Endpoint URL ${url} not saved: a signed PING must be answered 200 {"type": 1}; it ${said}`);
    }
    const bad: [string, EndpointPostOptions][] = [
      ['a signature of other bytes', { signature: 'invalid' }],
      ['a body that differs from the signed one', { tamperBody: true }],
    ];
    for (const [what, opts] of bad) {
      let said: string;
      try {
        const answer = await this.post(url, ping, opts);
        if (answer.status === 401) continue;
        said = `answered ${answer.status}: ${excerpt(answer.body)}`;
      } catch (err) {
        said = `failed: ${(err as Error).message}`;
      }
      throw new Error(`Interactions Endpoint URL ${url} not saved: a PING with ${what} must be answered 401; it ${said}`);
    }
  }

  /** Aborts the requests still waiting for an answer. */
  async close(): Promise<void> {
    this.closing.abort(new Error('fake Discord closed'));
    await this.agent.destroy();
  }

  private async send(url: string, payload: object, opts: EndpointPostOptions, deadline: AbortSignal): Promise<EndpointAnswer> {
    const body = JSON.stringify(payload);
    const timestamp = opts.timestamp ?? String(Math.floor(Date.now() / 1000));
    const signature = opts.signature ?? 'valid';
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': INTERACTIONS_USER_AGENT,
      'x-signature-timestamp': timestamp,
    };
    if (signature !== 'missing') headers['x-signature-ed25519'] = signInteraction(this.privateKey, timestamp, signature === 'valid' ? body : `${body}x`);
    const response = await request(url, {
      method: 'POST',
      headers,
      body: opts.tamperBody ? `${body} ` : body,
      dispatcher: this.agent,
      signal: AbortSignal.any([deadline, this.closing.signal]),
    });
    return { status: response.statusCode, body: await response.body.text() };
  }
}
