/**
 * POST /api/publish: `{"channel":"C","data":...}` or `{"channels":["A","B"],"data":...}`.
 * `data` that is not a string is published as its JSON text. Answers `{"id":"..."}` (one channel) or
 * `{"ids":["...",...]}` (several, in the order given).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiKeys, isLoopback, type ApiKeyScope } from '../auth/api-key.js';
import { bearerOf } from '../transport/request.js';
import type { Namespaces } from '../auth/namespaces.js';
import type { Broker, PublishOptions } from '../broker/broker.js';
import type { HeraldConfig } from '../config.js';
import type { NodeMetrics } from '../core/metrics.js';
import { HeraldError, toHeraldError } from '../errors.js';
import { channelProblem } from '../protocol/channel.js';
import { readJsonBody } from './body.js';
import { sendJson } from './respond.js';

export interface PublishRequest {
  readonly channels: string[];
  readonly data: string;
}

/** Validate a publish body. Throws HeraldError 400 naming what is wrong. */
export function parsePublishBody(body: unknown, maxChannels: number): PublishRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new HeraldError('bad_request', 'body must be a JSON object');
  }
  const b = body as Record<string, unknown>;
  if (!('data' in b) || b['data'] === undefined) throw new HeraldError('bad_request', '"data" is missing');
  const data = typeof b['data'] === 'string' ? b['data'] : JSON.stringify(b['data']);
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
  return { channels: channels as string[], data };
}

export class PublishApi {
  private readonly keys: ApiKeys;
  constructor(
    private readonly config: HeraldConfig,
    private readonly broker: Broker,
    private readonly metrics: NodeMetrics,
    private readonly historyFor: (channel: string) => PublishOptions | undefined = () => undefined,
    private readonly namespaces?: Namespaces,
  ) {
    this.keys = new ApiKeys(config.apiKeys, config.scopedApiKeys);
  }

  /** Throws 401 unless the request carries a configured API key (or comes from loopback in --dev). */
  authenticate(authorization: string | undefined, remoteAddress: string | undefined): ApiKeyScope {
    const presented = bearerOf(authorization);
    const scope = presented !== undefined ? this.keys.match(presented) : undefined;
    if (scope) return scope;
    if (this.config.dev && presented === undefined && isLoopback(remoteAddress)) return {};
    throw new HeraldError('unauthorized', presented === undefined ? 'missing API key' : 'invalid API key');
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST') throw new HeraldError('method_not_allowed', 'use POST');
    const scope = this.authenticate(req.headers.authorization, req.socket.remoteAddress);
    const body = await readJsonBody(req, this.config.maxBodyBytes);
    sendJson(res, 200, await this.answer(scope, body));
  }

  /**
   * The publish API for a request read by the front reader (src/http/fast-publish.ts): the same checks, from raw
   * parts. Resolves with the HTTP status and JSON answer; never rejects.
   */
  async handleRaw(
    authorization: string | undefined,
    remoteAddress: string | undefined,
    body: Buffer,
  ): Promise<{ status: number; json: unknown; code?: string }> {
    try {
      const scope = this.authenticate(authorization, remoteAddress);
      if (body.length > this.config.maxBodyBytes) {
        throw new HeraldError('payload_too_large', `body over ${this.config.maxBodyBytes} bytes`);
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(body.toString('utf8'));
      } catch {
        throw new HeraldError('bad_request', 'body is not valid JSON');
      }
      return { status: 200, json: await this.answer(scope, parsed) };
    } catch (err) {
      const e = toHeraldError(err);
      return { status: e.status, json: e.toJSON(), code: e.code };
    }
  }

  /** The answer for a request refused on its headers alone (a missing or wrong key), or undefined. */
  refuseEarly(authorization: string | undefined, remoteAddress: string | undefined): { status: number; json: unknown; code: string } | undefined {
    try {
      this.authenticate(authorization, remoteAddress);
      return undefined;
    } catch (err) {
      const e = toHeraldError(err);
      return { status: e.status, json: e.toJSON(), code: e.code };
    }
  }

  /** Validate, check the key's scope, publish; the JSON answer. */
  private async answer(scope: ApiKeyScope, body: unknown): Promise<unknown> {
    const request = parsePublishBody(body, this.config.maxChannelsPerConnection);
    if (scope.namespaces) {
      for (const c of request.channels) {
        const ns = this.namespaces?.nameOf(c) ?? '';
        if (!scope.namespaces.includes(ns)) {
          throw new HeraldError('forbidden', `this API key may not publish to ${ns === '' ? 'the default namespace' : `namespace ${ns}`}`);
        }
      }
    }
    const ids = await this.publish(request);
    this.metrics.published.inc({ source: 'api' }, request.channels.length);
    if (request.channels.length === 1 && 'channel' in (body as object)) return { id: ids[0] ?? null };
    return { ids };
  }

  private async publish(request: PublishRequest): Promise<(string | null)[]> {
    if (request.channels.length === 1) {
      const c = request.channels[0] as string;
      const r = await this.broker.publish(c, request.data, this.historyFor(c));
      return [r.id ?? null];
    }
    const results = await Promise.all(
      request.channels.map((c) => this.broker.publish(c, request.data, this.historyFor(c))),
    );
    return results.map((r) => r.id ?? null);
  }
}
