/**
 * The Pusher HTTP API at `/apps/{app_id}/...` (docs/pusher.md), as the official `pusher` server libraries call it:
 * events, batch_events, channels, channels/{name}, channels/{name}/users, users/{id}/terminate_connections.
 *
 * Every request is signed (auth_key, auth_timestamp within ±600 s, auth_version 1.0, body_md5 for a body,
 * auth_signature = HMAC-SHA256(secret, "METHOD\nPATH\nSORTED_QUERY")); anything else is 401 before the body is used.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HeraldConfig } from '../config.js';
import type { HeraldNode } from '../core/node.js';
import { HeraldError } from '../errors.js';
import { parseJsonBody, readBody } from '../http/body.js';
import { sendJson } from '../http/respond.js';
import type { Presence } from '../presence/presence.js';
import type { PusherApp, PusherApps } from './apps.js';
import {
  apiStringToSign,
  channelKind,
  decodeSegment,
  encodeEnvelope,
  hmacHex,
  md5Hex,
  sameHex,
  validChannelName,
  validEventName,
  validSocketId,
} from './protocol.js';
import type { PusherPresence } from './presence.js';
import type { ClusterChannels } from './cluster-channels.js';

/** Pusher's limits: channels per trigger, events per batch. */
const MAX_TRIGGER_CHANNELS = 100;
const MAX_BATCH_EVENTS = 10;
/** Seconds a request's auth_timestamp may be away from the server's clock. */
export const TIMESTAMP_TOLERANCE_SECONDS = 600;

export interface PusherApiContext {
  readonly node: HeraldNode;
  readonly config: HeraldConfig;
  readonly apps: PusherApps;
  readonly presence: Presence;
  readonly pusherPresence: PusherPresence;
  /** Subscribers per channel on every node. */
  readonly channels: ClusterChannels;
  /** Close the connections of a user on every node. */
  terminate(app: PusherApp, userId: string): void;
}

export class PusherHttpApi {
  constructor(private readonly ctx: PusherApiContext) {}

  /** The router's handler for every path under `/apps/`. */
  readonly handle = async (req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const m = /^\/apps\/([^/]{1,64})\/(.*)$/.exec(path);
    if (!m) throw new HeraldError('not_found', 'no such Pusher API path');
    const app = this.ctx.apps.withId(segment(m[1]!));
    if (!app) throw new HeraldError('not_found', 'unknown app id');
    const rest = m[2]!;
    const method = req.method ?? 'GET';
    const body = method === 'POST' ? await readBody(req, this.ctx.config.maxBodyBytes) : Buffer.alloc(0);
    checkSignature(app, method, path, query, body);
    const json = body.length > 0 ? parseJsonBody(body, this.ctx.config.maxJsonDepth) : undefined;
    if (rest === 'events' && method === 'POST') return sendJson(res, 200, await this.events(app, json));
    if (rest === 'batch_events' && method === 'POST') return sendJson(res, 200, await this.batch(app, json));
    if (rest === 'channels' && method === 'GET') return sendJson(res, 200, await this.channels(app, query));
    const channelPath = /^channels\/([^/]+)(\/users)?$/.exec(rest);
    if (channelPath && method === 'GET') {
      const name = segment(channelPath[1]!);
      if (!validChannelName(name)) throw new HeraldError('invalid_channel', 'invalid channel name');
      return sendJson(res, 200, channelPath[2] ? await this.users(app, name) : await this.channel(app, name, query));
    }
    const terminate = /^users\/([^/]+)\/terminate_connections$/.exec(rest);
    if (terminate && method === 'POST') {
      const user = segment(terminate[1]!);
      if (user.length === 0 || user.length > 255) throw new HeraldError('bad_request', 'invalid user id');
      this.ctx.terminate(app, user);
      return sendJson(res, 200, {});
    }
    throw new HeraldError('not_found', `no Pusher API call ${method} ${rest.slice(0, 64)}`);
  };

  private async events(app: PusherApp, json: unknown): Promise<Record<string, unknown>> {
    const e = checkEvent(app, json, true);
    for (const channel of e.channels) {
      await this.ctx.node.publish(app.heraldChannel(channel), e.envelope, { source: 'pusher' });
    }
    return e.info ? { channels: Object.fromEntries(await Promise.all(e.channels.map(async (c) => [c, await this.info(app, c, e.info!)]))) } : {};
  }

  private async batch(app: PusherApp, json: unknown): Promise<Record<string, unknown>> {
    const list = (json as Record<string, unknown> | undefined)?.['batch'];
    if (!Array.isArray(list)) throw new HeraldError('bad_request', 'body must be {"batch": [...]}');
    if (list.length > MAX_BATCH_EVENTS) throw new HeraldError('bad_request', `at most ${MAX_BATCH_EVENTS} events per batch`);
    // Every event is checked before any is published: a bad batch publishes nothing.
    const events = list.map((item) => checkEvent(app, item, false));
    for (const e of events) await this.ctx.node.publish(app.heraldChannel(e.channels[0]!), e.envelope, { source: 'pusher' });
    if (!events.some((e) => e.info)) return {};
    return { batch: await Promise.all(events.map((e) => (e.info ? this.info(app, e.channels[0]!, e.info) : {}))) };
  }

  private async channels(app: PusherApp, query: URLSearchParams): Promise<Record<string, unknown>> {
    const prefix = query.get('filter_by_prefix') ?? '';
    const info = infoFields(query.get('info'));
    if (info.includes('user_count') && !prefix.startsWith('presence-')) {
      throw new HeraldError('bad_request', 'info=user_count needs filter_by_prefix=presence-');
    }
    const counts = await this.ctx.channels.count(app.heraldChannel(prefix));
    const names = new Map<string, number>();
    for (const [channel, n] of counts) {
      const name = app.pusherChannel(channel);
      if (name !== undefined) names.set(name, n);
    }
    const channels: Record<string, unknown> = {};
    for (const name of [...names.keys()].sort()) channels[name] = info.length > 0 ? await this.info(app, name, info, names.get(name)) : {};
    return { channels };
  }

  private async channel(app: PusherApp, name: string, query: URLSearchParams): Promise<Record<string, unknown>> {
    const info = infoFields(query.get('info'));
    if (info.includes('user_count') && channelKind(name) !== 'presence') {
      throw new HeraldError('bad_request', 'user_count is for presence channels');
    }
    const channel = app.heraldChannel(name);
    const subscribers = (await this.ctx.channels.count('', channel)).get(channel) ?? 0;
    return { occupied: subscribers > 0, ...(await this.info(app, name, info, subscribers)) };
  }

  /** `subscription_count` and `user_count` as asked; `subscribers` when the caller counted them already. */
  private async info(app: PusherApp, name: string, fields: readonly string[], subscribers?: number): Promise<Record<string, unknown>> {
    const channel = app.heraldChannel(name);
    const out: Record<string, unknown> = {};
    if (fields.includes('user_count') && channelKind(name) === 'presence') out['user_count'] = await this.ctx.pusherPresence.userCount(channel);
    if (fields.includes('subscription_count')) {
      out['subscription_count'] = subscribers ?? (await this.ctx.channels.count('', channel)).get(channel) ?? 0;
    }
    return out;
  }

  private async users(app: PusherApp, name: string): Promise<Record<string, unknown>> {
    if (channelKind(name) !== 'presence') throw new HeraldError('bad_request', 'users are listed for presence channels only');
    const snapshot = await this.ctx.pusherPresence.snapshot(app.heraldChannel(name));
    return { users: snapshot.ids.map((id) => ({ id })) };
  }
}

function segment(s: string): string {
  const decoded = decodeSegment(s);
  if (decoded === undefined) throw new HeraldError('bad_request', 'malformed %-escape in the path');
  return decoded;
}

function infoFields(v: string | null): string[] {
  if (!v) return [];
  const fields = v.split(',').map((f) => f.trim());
  for (const f of fields) if (f !== 'user_count' && f !== 'subscription_count') throw new HeraldError('bad_request', `unknown info ${f.slice(0, 32)}`);
  return fields;
}

interface CheckedEvent {
  readonly channels: string[];
  readonly envelope: string;
  readonly info: string[] | undefined;
}

/** One event of `events` (many channels) or of `batch_events` (one channel), validated. */
function checkEvent(app: PusherApp, json: unknown, many: boolean): CheckedEvent {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new HeraldError('bad_request', 'an event must be a JSON object');
  const e = json as Record<string, unknown>;
  const { name, data, socket_id: socketId } = e;
  if (!validEventName(name)) throw new HeraldError('bad_request', 'name must be an event name of 1-200 characters');
  if (typeof data !== 'string') throw new HeraldError('bad_request', 'data must be a string');
  if (Buffer.byteLength(data) > app.config.maxEventBytes) throw new HeraldError('payload_too_large', `data is over ${app.config.maxEventBytes} bytes`);
  if (socketId !== undefined && !validSocketId(socketId)) throw new HeraldError('bad_request', 'socket_id is not a socket id');
  let channels: unknown[];
  if (many && e['channels'] !== undefined) {
    if (!Array.isArray(e['channels'])) throw new HeraldError('bad_request', 'channels must be a list');
    channels = e['channels'];
  } else channels = [e['channel']];
  if (channels.length === 0 || channels.length > MAX_TRIGGER_CHANNELS) {
    throw new HeraldError('bad_request', `1 to ${MAX_TRIGGER_CHANNELS} channels per event`);
  }
  for (const c of channels) if (!validChannelName(c)) throw new HeraldError('invalid_channel', 'invalid channel name');
  if (channels.length > 1 && channels.some((c) => channelKind(c as string) === 'encrypted')) {
    throw new HeraldError('bad_request', 'an event to an encrypted channel names that one channel only');
  }
  const info = typeof e['info'] === 'string' ? infoFields(e['info']) : undefined;
  return {
    channels: channels as string[],
    envelope: encodeEnvelope({ event: name, dataJson: JSON.stringify(data), ...(socketId !== undefined ? { socketId } : {}) }),
    info,
  };
}

/** Pusher's request signing; throws `unauthorized` (401) for anything off. */
export function checkSignature(app: PusherApp, method: string, path: string, query: URLSearchParams, body: Buffer, nowMs = Date.now()): void {
  const key = query.get('auth_key');
  const timestamp = query.get('auth_timestamp');
  const signature = query.get('auth_signature');
  if (key !== app.key) throw new HeraldError('unauthorized', 'auth_key is not this app\'s key');
  if (query.get('auth_version') !== '1.0') throw new HeraldError('unauthorized', 'auth_version must be 1.0');
  if (timestamp === null || !/^\d{1,12}$/.test(timestamp)) throw new HeraldError('unauthorized', 'auth_timestamp missing');
  if (Math.abs(Number(timestamp) - nowMs / 1000) > TIMESTAMP_TOLERANCE_SECONDS) {
    throw new HeraldError('unauthorized', `auth_timestamp is more than ${TIMESTAMP_TOLERANCE_SECONDS} s from the server's time`);
  }
  if (body.length > 0 && query.get('body_md5') !== md5Hex(body)) throw new HeraldError('unauthorized', 'body_md5 does not match the body');
  if (signature === null || !sameHex(signature, hmacHex(app.secret, apiStringToSign(method, path, query)))) {
    throw new HeraldError('unauthorized', 'auth_signature does not sign this request');
  }
}
