/**
 * POST /api/publish, two body forms:
 * - JSON: `{"channel":"C","data":...}` or `{"channels":["A","B"],"data":...}`. `data` that is not a string is
 *   published as its JSON text. Answers `{"id":"..."}` (one `channel`) or `{"ids":["...",...]}` (in the order given).
 * - Raw: `POST /api/publish?channel=C` (repeatable): the body is the data itself. Any content type but JSON is
 *   published verbatim (it must be UTF-8 text); with `Content-Type: application/json` the body is the data as JSON.
 *   Answers `{"id":"..."}` for one channel, `{"ids":[...]}` for several.
 *
 * An idempotency key (`Idempotency-Key` header or `"idempotency_key"` field) makes a retry within
 * `idempotencyWindowSeconds` answer the first attempt's id, with `"replayed":true`, and publish nothing: a publisher
 * that got 504 `outcome_unknown` (or lost the connection) retries under the same key without risking a duplicate.
 *
 * Both readers of a publish request (node:http, and the fast path in ./fast-publish.ts) call `authenticate` once on
 * the request head, then `publish(scope, body)`: the one entry point, which publishes through HeraldNode.publish.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiKeys, isLoopback, scopeAllows, type ApiKeyScope } from '../auth/api-key.js';
import { bearerOf, headerOf, queryParams } from './request.js';
import { ClientAddress } from './client-address.js';
import { checkDevHost, crossSiteProblem } from './dev-guard.js';
import type { PublishResult } from '../broker/broker.js';
import type { HeraldConfig } from '../config.js';
import type { ChannelPolicy } from '../core/channel-policy.js';
import type { HeraldNode } from '../core/node.js';
import { HeraldError, RETRY_AFTER_SECONDS, toHeraldError } from '../errors.js';
import { channelProblem } from '../protocol/channel.js';
import { requestIdempotencyKey } from '../protocol/idempotency.js';
import { dataText, JsonRefused } from '../protocol/json-bounds.js';
import { isJsonValue } from '../protocol/json-data.js';
import { parseJsonBody, readBody } from './body.js';
import { sendJson } from './respond.js';

export interface PublishRequest {
  readonly channels: string[];
  readonly data: string;
  /** `data` is JSON text: the body gave a JSON value that is not a string (Publication.json). */
  readonly json: boolean;
  readonly idempotencyKey?: string;
}

/** What the publish API reads off a request head, whichever reader parsed it. */
export interface PublishHead {
  readonly authorization: string | undefined;
  /** How many `Authorization` fields the head has (more than one is refused, after the --dev Host check). */
  readonly authorizationFields?: number;
  readonly remoteAddress: string | undefined;
  /** A request header by lower-case name. */
  header(name: string): string | undefined;
}

/** A publish request's body and what says how to read it. */
export interface PublishBody {
  readonly bytes: Buffer;
  /** The request's query: `channel=` there makes the body the data itself (a raw publish). */
  readonly query: URLSearchParams;
  readonly contentType: string | undefined;
  /** The `Idempotency-Key` header. */
  readonly idempotencyKey: string | undefined;
}

/** The HTTP status and JSON answer of a publish (an error's `code` too, for the refusal metrics). */
export interface PublishAnswer {
  status: number;
  json: unknown;
  code?: string;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** `application/json` or any `+json` type, parameters aside. */
export function isJsonContentType(contentType: string | undefined): boolean {
  const type = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  return type === 'application/json' || type.endsWith('+json');
}

/** Data as JSON text: 413 when longer than `maxDataChars`, 400 when it cannot be serialized. */
function dataOf(value: unknown, maxDataChars: number): string {
  try {
    return dataText(value, maxDataChars);
  } catch (err) {
    const tooLarge = err instanceof JsonRefused && err.tooLarge;
    throw new HeraldError(tooLarge ? 'payload_too_large' : 'bad_request', err instanceof Error ? err.message : 'bad data');
  }
}

/** Channel names of a publish: at least one, at most `maxChannels`, each valid. */
function checkChannels(channels: readonly unknown[], maxChannels: number): string[] {
  if (channels.length > maxChannels) throw new HeraldError('too_many_channels', `at most ${maxChannels} channels per publish`);
  for (const c of channels) {
    if (typeof c !== 'string') throw new HeraldError('invalid_channel', 'channel names must be strings');
    const problem = channelProblem(c);
    if (problem) throw new HeraldError('invalid_channel', problem);
  }
  return channels as string[];
}

/**
 * Validate a JSON publish body. Throws HeraldError 400 naming what is wrong, 413 when `data` as JSON text would be
 * longer than `maxDataChars`.
 */
export function parsePublishBody(body: unknown, maxChannels: number, maxDataChars: number): PublishRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new HeraldError('bad_request', 'body must be a JSON object');
  }
  const b = body as Record<string, unknown>;
  if (!('data' in b) || b['data'] === undefined) throw new HeraldError('bad_request', '"data" is missing');
  const data = dataOf(b['data'], maxDataChars);
  const json = isJsonValue(b['data']);
  let channels: unknown[];
  if (b['channel'] !== undefined && b['channels'] !== undefined) {
    throw new HeraldError('bad_request', 'give "channel" or "channels", not both');
  } else if (b['channel'] !== undefined) {
    channels = [b['channel']];
  } else if (Array.isArray(b['channels'])) {
    channels = b['channels'];
    if (channels.length === 0) throw new HeraldError('bad_request', '"channels" is empty');
  } else {
    throw new HeraldError('bad_request', '"channel" or "channels" is missing');
  }
  const idempotencyKey = requestIdempotencyKey(undefined, b['idempotency_key']);
  return { channels: checkChannels(channels, maxChannels), data, json, ...(idempotencyKey !== undefined ? { idempotencyKey } : {}) };
}

/**
 * A raw publish (`?channel=C`): the body is the data. JSON content types are parsed (a JSON string publishes that
 * string, any other value its JSON text); anything else must be UTF-8 text and is published as it is.
 */
export function parseRawPublish(
  body: PublishBody,
  channels: readonly string[],
  limits: { maxChannels: number; maxJsonDepth: number; maxDataChars: number },
): PublishRequest {
  const { maxChannels, maxJsonDepth, maxDataChars } = limits;
  let data: string;
  let json = false;
  if (isJsonContentType(body.contentType)) {
    const value = parseJsonBody(body.bytes, maxJsonDepth);
    data = dataOf(value, maxDataChars);
    json = isJsonValue(value);
  } else {
    try {
      data = UTF8.decode(body.bytes);
    } catch {
      throw new HeraldError('bad_request', 'body is not UTF-8 text: a raw publish carries text');
    }
  }
  return { channels: checkChannels(channels, maxChannels), data, json };
}

export class PublishApi {
  private readonly keys: ApiKeys;
  constructor(
    private readonly config: HeraldConfig,
    private readonly node: HeraldNode,
    private readonly policy: ChannelPolicy,
    private readonly clients = new ClientAddress(config.trustedProxies),
  ) {
    this.keys = new ApiKeys(config.apiKeys, config.scopedApiKeys);
  }

  /**
   * The request head's credentials, checked once per request, before its body is read: throws 401 unless it
   * carries a configured API key, or comes from this machine in --dev (the client address behind trusted proxies)
   * and not from another site's web page (403, http/dev-guard.ts). In --dev the Host is checked first (the fast
   * path never passes the router, which checks it for everything else).
   */
  authenticate(head: PublishHead): ApiKeyScope {
    checkDevHost(this.config, head.header('host'));
    // node:http keeps the first of two Authorization headers; which one counts is ambiguous, so neither does.
    if ((head.authorizationFields ?? 0) > 1) throw new HeraldError('bad_request', 'more than one Authorization header');
    const presented = bearerOf(head.authorization);
    const scope = presented !== undefined ? this.keys.match(presented) : undefined;
    if (scope) return scope;
    if (this.config.dev && presented === undefined && isLoopback(this.clients.of(head.remoteAddress, head.header))) {
      const crossSite = crossSiteProblem(head.header, this.config.allowedOrigins);
      if (crossSite !== undefined) throw new HeraldError('origin_not_allowed', crossSite);
      return {};
    }
    throw new HeraldError('unauthorized', presented === undefined ? 'missing API key' : 'invalid API key');
  }

  /**
   * The one entry point of a publish once its head is authenticated: read the body (JSON or raw), check the key's
   * scope, publish through the node. Resolves with the answer; never rejects.
   */
  async publish(scope: ApiKeyScope, body: PublishBody): Promise<PublishAnswer> {
    try {
      if (body.bytes.length > this.config.maxBodyBytes) {
        throw new HeraldError('payload_too_large', `body over ${this.config.maxBodyBytes} bytes`);
      }
      const rawChannels = body.query.getAll('channel');
      const { maxChannelsPerConnection: maxChannels, maxJsonDepth } = this.config;
      let request: PublishRequest;
      let single: boolean;
      if (rawChannels.length > 0) {
        request = parseRawPublish(body, rawChannels, { maxChannels, maxJsonDepth, maxDataChars: this.config.maxBodyBytes });
        single = rawChannels.length === 1;
      } else {
        const json = parseJsonBody(body.bytes, maxJsonDepth);
        request = parsePublishBody(json, maxChannels, this.config.maxBodyBytes);
        single = request.channels.length === 1 && 'channel' in (json as object);
      }
      const idempotencyKey = requestIdempotencyKey(body.idempotencyKey, request.idempotencyKey);
      this.checkScope(scope, request.channels);
      const results = await this.publishAll(request.channels, request.data, request.json, idempotencyKey);
      return { status: 200, json: answerOf(results, single) };
    } catch (err) {
      const e = toHeraldError(err);
      return { status: e.status, json: e.toJSON(), code: e.code };
    }
  }

  /** The node:http route: the same two steps as the fast path. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST') throw new HeraldError('method_not_allowed', 'use POST');
    const header = headerOf(req);
    const scope = this.authenticate({
      authorization: req.headers.authorization,
      authorizationFields: req.headersDistinct['authorization']?.length ?? 0,
      remoteAddress: req.socket.remoteAddress,
      header,
    });
    const bytes = await readBody(req, this.config.maxBodyBytes);
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const query = queryParams(q < 0 ? '' : url.slice(q + 1));
    const answer = await this.publish(scope, { bytes, query, contentType: header('content-type'), idempotencyKey: header('idempotency-key') });
    // Every 503 (not published: broker down) may be retried shortly; the fast path says the same.
    sendJson(res, answer.status, answer.json, answer.status === 503 ? { 'Retry-After': String(RETRY_AFTER_SECONDS) } : {});
  }

  /** A key scoped to namespaces publishes only there (403 otherwise). */
  private checkScope(scope: ApiKeyScope, channels: readonly string[]): void {
    if (!scopeAllows(scope, 'publish')) throw new HeraldError('forbidden', 'this API key may not publish');
    if (!scope.namespaces) return;
    for (const c of channels) {
      const ns = this.policy.namespaceOf(c);
      if (!scope.namespaces.includes(ns)) {
        throw new HeraldError('forbidden', `this API key may not publish to ${ns === '' ? 'the default namespace' : `namespace ${ns}`}`);
      }
    }
  }

  private async publishAll(
    channels: readonly string[],
    data: string,
    json: boolean,
    idempotencyKey: string | undefined,
  ): Promise<PublishResult[]> {
    const options = { source: 'api' as const, ...(idempotencyKey !== undefined ? { idempotencyKey } : {}), ...(json ? { json } : {}) };
    if (channels.length === 1) return [await this.node.publish(channels[0] as string, data, options)];
    return Promise.all(channels.map((c) => this.node.publish(c, data, options)));
  }
}

/** `{"id"}` for one channel named alone, else `{"ids"}`; `replayed` only where nothing at all was published now. */
function answerOf(results: readonly PublishResult[], single: boolean): unknown {
  const ids = results.map((r) => r.id ?? null);
  const all = results.every((r) => r.replayed === true) ? { replayed: true } : {};
  return single ? { id: ids[0] ?? null, ...all } : { ids, ...all };
}
