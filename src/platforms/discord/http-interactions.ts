/**
 * Discord's HTTP interactions endpoint (Discord docs: "Receiving and Responding"), mounted when
 * DISCORD_PUBLIC_KEY is set: once the application's Interactions Endpoint URL points here, Discord
 * POSTs each interaction to PUBLIC_URL + /discord/interactions instead of sending it over the
 * gateway, so any number of bot processes behind a load balancer can take them.
 *
 * - Every request is verified: Ed25519 over `X-Signature-Timestamp + raw body` with the
 *   application's public key; anything else is answered 401 (Discord sends bad signatures on
 *   purpose to check this before it saves the URL).
 * - A PING is answered `{"type": 1}`.
 * - Everything else becomes a discord.js interaction and goes to the same InteractionHandler as
 *   in gateway mode. The interaction's first response is the HTTP answer: the handler's
 *   deferReply()/deferUpdate()/reply() POST to `/interactions/{id}/{token}/callback` through
 *   the client's REST, and `answerCallbacksOverHttp` turns that call, for an interaction whose
 *   request is still open, into the HTTP response body. Follow-ups and edits then go through the
 *   webhook routes exactly as in gateway mode.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Events, type Client, type Interaction, type REST } from 'discord.js';
import type { Logger } from '../../log.ts';
import { readBody, type HttpServer } from '../http/server.ts';
import type { AckFirst } from '../ack-first.ts';
import { ExpiringMap } from '../../util/expiring-map.ts';
import { CALLBACK_ROUTE } from './rest-request.ts';

export const DISCORD_INTERACTIONS_PATH = '/discord/interactions';
/** Interactions are small JSON documents (a click carries its message: still a few KiB). */
const MAX_BODY_BYTES = 512 * 1024;
/**
 * Discord sends each interaction once, at once: a signed request whose timestamp is further from
 * now than this (either way, for clock skew) or whose interaction id was already seen is a replay.
 */
export const MAX_TIMESTAMP_SKEW_S = 5 * 60;
/** Ids seen are remembered this long: more than twice the skew allowed, so a replay is refused by one check or the other. */
const SEEN_IDS_MS = 15 * 60_000;
/** Discord's deadline for the first response. Past it the answer is useless: free the request. */
export const FIRST_RESPONSE_DEADLINE_MS = 3_000;

/** The DER header of an Ed25519 SubjectPublicKeyInfo; the 32 key bytes follow it. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** The application's public key as shown in the developer portal (64 hex characters). */
export function discordPublicKey(hex: string): KeyObject {
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) {
    throw new Error('DISCORD_PUBLIC_KEY must be the 64 hexadecimal characters shown as "Public Key" on the application\'s General Information page');
  }
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, Buffer.from(hex, 'hex')]), format: 'der', type: 'spki' });
}

/** True when `signatureHex` is the application's Ed25519 signature of `timestamp + body`. */
export function verifyDiscordSignature(key: KeyObject, signatureHex: string | undefined, timestamp: string | undefined, body: Buffer): boolean {
  if (!signatureHex || !timestamp || !/^[0-9a-fA-F]{128}$/.test(signatureHex)) return false;
  try {
    return verify(null, Buffer.concat([Buffer.from(timestamp, 'utf8'), body]), key, Buffer.from(signatureHex, 'hex'));
  } catch {
    return false;
  }
}

type Answer = (body: unknown) => Promise<void>;

/**
 * Open HTTP requests waiting for their interaction's first response, by interaction id. Installs
 * itself in front of the REST client's POST: a callback for a waiting interaction is answered over
 * HTTP, every other request goes to Discord as before.
 */
export class HttpAnswers {
  readonly #waiting = new Map<string, Answer>();

  constructor(rest: REST) {
    const post = rest.post.bind(rest);
    rest.post = async (route, options = {}) => {
      const id = CALLBACK_ROUTE.exec(route)?.[1];
      const answer = id === undefined ? undefined : this.#waiting.get(id);
      // Files cannot ride in the HTTP answer (neither discord.js's nor a multipart body of the
      // bot's, rest-request.ts); the bot never sends any in a first response.
      if (!answer || options.files?.length || options.passThroughBody) return post(route, options);
      this.#waiting.delete(id!);
      await answer(options.body);
      // What the callback endpoint answers without ?with_response: 204, no body. (The webhook
      // calls that follow may overtake the answer: DiscordMessages retries them.)
      return undefined;
    };
  }

  wait(id: string, answer: Answer): () => void {
    this.#waiting.set(id, answer);
    return () => {
      if (this.#waiting.get(id) === answer) this.#waiting.delete(id);
    };
  }
}

/** discord.js builds interaction objects in an internal action (what the gateway's INTERACTION_CREATE runs). */
interface InteractionCreateAction {
  actions: { InteractionCreate: { handle(data: unknown): void } };
}

/**
 * The discord.js interaction for a raw payload, exactly as the gateway would build it; undefined
 * for kinds discord.js does not model. The action emits synchronously, so the listener only sees
 * this payload's interaction.
 */
export function toInteraction(client: Client, data: unknown): Interaction | undefined {
  let created: Interaction | undefined;
  const grab = (i: Interaction) => {
    created = i;
  };
  client.on(Events.InteractionCreate, grab);
  try {
    (client as unknown as InteractionCreateAction).actions.InteractionCreate.handle(data);
  } finally {
    client.off(Events.InteractionCreate, grab);
  }
  return created;
}

export interface InteractionsEndpointDeps {
  http: HttpServer;
  client: Client;
  publicKey: KeyObject;
  answers: HttpAnswers;
  ackFirst: AckFirst;
  log: Logger;
  /** The InteractionHandler: resolves when the interaction's work is done (never rejects). */
  handle(interaction: Interaction): Promise<void>;
}

/** Mounts POST /discord/interactions; the returned function makes it answer 503 (shutting down). */
export function mountInteractionsEndpoint(deps: InteractionsEndpointDeps): () => void {
  const { http, client, publicKey, answers, ackFirst, log } = deps;
  let stopped = false;
  /** Interaction ids already taken, for SEEN_IDS_MS. */
  const seen = new ExpiringMap<string, true>(SEEN_IDS_MS);
  const refuseSignature = (req: IncomingMessage, res: ServerResponse, why: string) => {
    log.warn({ remote: req.socket.remoteAddress, why }, 'discord interaction request refused');
    return json(res, 401, { error: 'invalid request signature' });
  };
  http.mount('POST', DISCORD_INTERACTIONS_PATH, async (req, res, { rest }) => {
    if (rest !== '') return json(res, 404, { error: 'not found' });
    if (stopped) return json(res, 503, { error: 'shutting down' });
    const signature = header(req, 'x-signature-ed25519');
    const timestamp = header(req, 'x-signature-timestamp');
    // Refused before reading the body: no signature at all, or more than an interaction can be.
    if (!signature || !timestamp) return refuseSignature(req, res, 'no signature headers');
    if (Number(req.headers['content-length']) > MAX_BODY_BYTES) return json(res, 413, { error: 'body too large' });
    let body: Buffer;
    try {
      body = await readBody(req, MAX_BODY_BYTES);
    } catch {
      return json(res, 413, { error: 'body too large' });
    }
    if (!verifyDiscordSignature(publicKey, signature, timestamp, body)) return refuseSignature(req, res, 'bad signature');
    const skew = Math.abs(Date.now() / 1000 - Number(timestamp));
    if (!(skew <= MAX_TIMESTAMP_SKEW_S)) return refuseSignature(req, res, `timestamp ${timestamp} is ${Math.round(skew)} s away from now`);
    // In flight from here until the answer is sent (or the client gives up).
    res.once('close', ackFirst.begin());
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      return json(res, 400, { error: 'invalid JSON' });
    }
    // An interaction is a JSON object; `null`, a number, a string or an array is none.
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return json(res, 400, { error: 'not an interaction object' });
    const data = parsed as { id?: unknown; type?: unknown };
    if (data.type === 1) return json(res, 200, { type: 1 });
    if (typeof data.id === 'string') {
      if (seen.has(data.id)) return refuseSignature(req, res, `interaction ${data.id} replayed`);
      seen.set(data.id, true);
    }
    let interaction: Interaction | undefined;
    try {
      interaction = typeof data.id === 'string' ? toInteraction(client, data) : undefined;
    } catch (err) {
      log.warn({ err, type: data.type }, 'discord interaction payload discord.js cannot read');
    }
    if (!interaction) {
      log.info({ type: data.type }, 'discord interaction of a kind the bot does not handle');
      return json(res, 400, { error: 'unsupported interaction' });
    }

    let answered = false;
    const stopWaiting = answers.wait(interaction.id, async (callback) => {
      // Discord gave up on the request (or the deadline below answered it): the interaction is gone.
      if (res.headersSent || res.destroyed) throw new Error('Unknown interaction: its HTTP request is already closed');
      answered = true;
      await json(res, 200, callback);
    });
    const deadline = setTimeout(() => {
      stopWaiting();
      if (!answered && !res.headersSent) {
        log.warn({ interactionId: interaction.id }, 'discord interaction not answered within 3 s');
        void json(res, 500, { error: 'no answer in time' });
      }
    }, FIRST_RESPONSE_DEADLINE_MS);
    try {
      await deps.handle(interaction);
    } finally {
      clearTimeout(deadline);
      stopWaiting();
      // The handler finished without a first response (e.g. a kind it ignores): do not leave
      // Discord waiting for the deadline.
      if (!answered && !res.headersSent) await json(res, 500, { error: 'interaction not answered' });
    }
  });
  return () => {
    stopped = true;
  };
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Writes a JSON answer; resolves once it is handed to the socket (or the socket is gone). */
function json(res: ServerResponse, status: number, body: unknown): Promise<void> {
  const text = JSON.stringify(body);
  // A request the client already gave up on: nothing to write, nothing to wait for.
  if (res.destroyed || res.writableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    res.once('close', resolve);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) }).end(text, resolve);
  });
}
