/**
 * POST /api/publish: `{"channel":"C","data":...}` or `{"channels":["A","B"],"data":...}`.
 * `data` that is not a string is published as its JSON text. Answers `{"id":"..."}` (one channel) or
 * `{"ids":["...",...]}` (several, in the order given).
 *
 * An idempotency key (`Idempotency-Key` header or `"idempotency_key"` field) makes a retry within
 * `idempotencyWindowSeconds` answer the first attempt's id, with `"replayed":true`, and publish nothing: a publisher
 * that got 504 `outcome_unknown` (or lost the connection) retries under the same key without risking a duplicate.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiKeys, isLoopback, type ApiKeyScope } from '../auth/api-key.js';
import { bearerOf, headerOf } from './request.js';
import { ClientAddress } from './client-address.js';
import { checkDevHost, crossSiteProblem } from './dev-guard.js';
import type { Namespaces } from '../auth/namespaces.js';
import type { Broker, PublishOptions, PublishResult } from '../broker/broker.js';
import type { HeraldConfig } from '../config.js';
import type { NodeMetrics } from '../core/metrics.js';
import { HeraldError, toHeraldError } from '../errors.js';
import { channelProblem } from '../protocol/channel.js';
import { requestIdempotencyKey } from '../protocol/idempotency.js';
import { dataText, JsonRefused } from '../protocol/json-bounds.js';
import { parseJsonBody, readJsonBody } from './body.js';
import { sendJson } from './respond.js';

export interface PublishRequest {
  readonly channels: string[];
  readonly data: string;
  readonly idempotencyKey?: string;
}

/**
 * Validate a publish body. Throws HeraldError 400 naming what is wrong, 413 when `data` as JSON text would be longer
 * than `maxDataChars`.
 */
export function parsePublishBody(body: unknown, maxChannels: number, maxDataChars: number): PublishRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new HeraldError('bad_request', 'body must be a JSON object');
  }
  const b = body as Record<string, unknown>;
  if (!('data' in b) || b['data'] === undefined) throw new HeraldError('bad_request', '"data" is missing');
  let data: string;
  try {
    data = dataText(b['data'], maxDataChars);
  } catch (err) {
    const tooLarge = err instanceof JsonRefused && err.tooLarge;
    throw new HeraldError(tooLarge ? 'payload_too_large' : 'bad_request', err instanceof Error ? err.message : 'bad data');
  }
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
  if (channels.length > maxChannels) {
    throw new HeraldError('too_many_channels', `at most ${maxChannels} channels per publish`);
  }
  for (const c of channels) {
    if (typeof c !== 'string') throw new HeraldError('invalid_channel', 'channel names must be strings');
    const problem = channelProblem(c);
    if (problem) throw new HeraldError('invalid_channel', problem);
  }
  const idempotencyKey = requestIdempotencyKey(undefined, b['idempotency_key']);
  return { channels: channels as string[], data, ...(idempotencyKey !== undefined ? { idempotencyKey } : {}) };
}

export class PublishApi {
  private readonly keys: ApiKeys;
  constructor(
    private readonly config: HeraldConfig,
    private readonly broker: Broker,
    private readonly metrics: NodeMetrics,
    private readonly historyFor: (channel: string) => PublishOptions | undefined = () => undefined,
    private readonly namespaces?: Namespaces,
    private readonly clients = new ClientAddress(config.trustedProxies),
  ) {
    this.keys = new ApiKeys(config.apiKeys, config.scopedApiKeys);
  }

  /**
   * Throws 401 unless the request carries a configured API key, or comes from this machine in --dev (the client
   * address behind trusted proxies) and not from another site's web page (403, http/dev-guard.ts).
   */
  authenticate(
    authorization: string | undefined,
    remoteAddress: string | undefined,
    header: (name: string) => string | undefined = () => undefined,
  ): ApiKeyScope {
    const presented = bearerOf(authorization);
    const scope = presented !== undefined ? this.keys.match(presented) : undefined;
    if (scope) return scope;
    if (this.config.dev && presented === undefined && isLoopback(this.clients.of(remoteAddress, header))) {
      const crossSite = crossSiteProblem(header, this.config.allowedOrigins);
      if (crossSite !== undefined) throw new HeraldError('origin_not_allowed', crossSite);
      return {};
    }
    throw new HeraldError('unauthorized', presented === undefined ? 'missing API key' : 'invalid API key');
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST') throw new HeraldError('method_not_allowed', 'use POST');
    // node:http keeps the first of two Authorization headers; which one counts is ambiguous, so neither does.
    if ((req.headersDistinct['authorization']?.length ?? 0) > 1) throw new HeraldError('bad_request', 'more than one Authorization header');
    const scope = this.authenticate(req.headers.authorization, req.socket.remoteAddress, headerOf(req));
    const body = await readJsonBody(req, this.config.maxBodyBytes, this.config.maxJsonDepth);
    const key = req.headers['idempotency-key'];
    sendJson(res, 200, await this.answer(scope, body, Array.isArray(key) ? key.join(', ') : key));
  }

  /**
   * The publish API for a request read by the front reader (src/http/fast-publish.ts): the same checks, from raw
   * parts. Resolves with the HTTP status and JSON answer; never rejects.
   */
  async handleRaw(
    authorization: string | undefined,
    remoteAddress: string | undefined,
    body: Buffer,
    header: (name: string) => string | undefined = () => undefined,
  ): Promise<{ status: number; json: unknown; code?: string }> {
    try {
      const scope = this.authenticate(authorization, remoteAddress, header);
      if (body.length > this.config.maxBodyBytes) {
        throw new HeraldError('payload_too_large', `body over ${this.config.maxBodyBytes} bytes`);
      }
      const parsed = parseJsonBody(body, this.config.maxJsonDepth);
      return { status: 200, json: await this.answer(scope, parsed, header('idempotency-key')) };
    } catch (err) {
      const e = toHeraldError(err);
      return { status: e.status, json: e.toJSON(), code: e.code };
    }
  }

  /** The answer for a request refused on its headers alone (a missing or wrong key), or undefined. */
  refuseEarly(
    authorization: string | undefined,
    remoteAddress: string | undefined,
    header: (name: string) => string | undefined = () => undefined,
  ): { status: number; json: unknown; code: string } | undefined {
    try {
      // The fast path never passes the router: its Host check is here.
      checkDevHost(this.config, header('host'));
      this.authenticate(authorization, remoteAddress, header);
      return undefined;
    } catch (err) {
      const e = toHeraldError(err);
      return { status: e.status, json: e.toJSON(), code: e.code };
    }
  }

  /** Validate, check the key's scope, publish; the JSON answer. */
  private async answer(scope: ApiKeyScope, body: unknown, keyHeader: string | undefined): Promise<unknown> {
    const parsed = parsePublishBody(body, this.config.maxChannelsPerConnection, this.config.maxBodyBytes);
    const idempotencyKey = requestIdempotencyKey(keyHeader, parsed.idempotencyKey);
    const request: PublishRequest = { ...parsed, ...(idempotencyKey !== undefined ? { idempotencyKey } : {}) };
    if (scope.namespaces) {
      for (const c of request.channels) {
        const ns = this.namespaces?.nameOf(c) ?? '';
        if (!scope.namespaces.includes(ns)) {
          throw new HeraldError('forbidden', `this API key may not publish to ${ns === '' ? 'the default namespace' : `namespace ${ns}`}`);
        }
      }
    }
    const results = await this.publish(request);
    const replayed = results.filter((r) => r.replayed === true).length;
    this.metrics.published.inc({ source: 'api' }, request.channels.length - replayed);
    if (replayed > 0) this.metrics.replayed.inc({ source: 'api' }, replayed);
    const ids = results.map((r) => r.id ?? null);
    // `replayed` only where every channel was answered from its key: nothing at all was published now.
    const all = replayed === request.channels.length ? { replayed: true } : {};
    if (request.channels.length === 1 && 'channel' in (body as object)) return { id: ids[0] ?? null, ...all };
    return { ids, ...all };
  }

  private async publish(request: PublishRequest): Promise<PublishResult[]> {
    const options = (c: string): PublishOptions | undefined => {
      const base = this.historyFor(c);
      if (request.idempotencyKey === undefined) return base;
      return { ...base, idempotency: { key: request.idempotencyKey, windowMs: this.config.idempotencyWindowSeconds * 1000 } };
    };
    if (request.channels.length === 1) {
      const c = request.channels[0] as string;
      return [await this.broker.publish(c, request.data, options(c))];
    }
    return Promise.all(request.channels.map((c) => this.broker.publish(c, request.data, options(c))));
  }
}
