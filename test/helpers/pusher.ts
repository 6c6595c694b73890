/**
 * The real Pusher libraries from npm, for the Pusher protocol tests: pusher-js (the client, its Node build) and
 * `pusher` (the official Node server library: triggers, HTTP API calls, channel authorization, webhook checks).
 * Typed here by what the tests use of them.
 */
import { createRequire } from 'node:module';
import { eventually } from './server.js';

const require = createRequire(import.meta.url);

export interface PusherJsChannel {
  bind(event: string, fn: (data: unknown, meta?: unknown) => void): void;
  bind_global(fn: (event: string, data: unknown) => void): void;
  trigger(event: string, data: unknown): boolean;
  subscribed: boolean;
  members?: { count: number; members: Record<string, unknown>; me: { id: string } | null };
}

export interface PusherJsClient {
  subscribe(channel: string): PusherJsChannel;
  unsubscribe(channel: string): void;
  signin(): void;
  disconnect(): void;
  bind(event: string, fn: (data: unknown) => void): void;
  user: { bind(event: string, fn: (data: unknown) => void): void };
  connection: {
    state: string;
    socket_id: string;
    bind(event: string, fn: (data: unknown) => void): void;
  };
}

type PusherJsCtor = new (key: string, options: Record<string, unknown>) => PusherJsClient;
export const PusherJs = require('pusher-js') as PusherJsCtor;

export interface PusherServerResponse {
  status: number;
  text(): Promise<string>;
  json(): Promise<unknown>;
}

export interface PusherServerLib {
  trigger(channel: string | string[], event: string, data: unknown, params?: { socket_id?: string; info?: string }): Promise<PusherServerResponse>;
  triggerBatch(batch: { channel: string; name: string; data: unknown; socket_id?: string }[]): Promise<PusherServerResponse>;
  get(opts: { path: string; params?: Record<string, string> }): Promise<PusherServerResponse>;
  post(opts: { path: string; body: unknown }): Promise<PusherServerResponse>;
  terminateUserConnections(userId: string): Promise<PusherServerResponse>;
  authorizeChannel(socketId: string, channel: string, presenceData?: { user_id: string; user_info?: unknown }): { auth: string; channel_data?: string; shared_secret?: string };
  authenticateUser(socketId: string, user: { id: string; [k: string]: unknown }): { auth: string; user_data: string };
  webhook(request: { headers: Record<string, string | undefined>; rawBody: string }): { isValid(): boolean; getEvents(): { name: string; channel: string; [k: string]: unknown }[] };
}

type PusherServerCtor = new (options: Record<string, unknown>) => PusherServerLib;
export const PusherServer = require('pusher') as PusherServerCtor;

export const DEV_APP = { appId: 'app-id', key: 'app-key', secret: 'app-secret' };

/** The server library pointed at a node (`url` http://127.0.0.1:PORT). */
export function serverLib(url: string, app: { appId: string; key: string; secret: string } = DEV_APP, extra: Record<string, unknown> = {}): PusherServerLib {
  const u = new URL(url);
  return new PusherServer({ ...app, host: u.hostname, port: u.port, useTLS: false, ...extra });
}

export interface TestPusherClient {
  pusher: PusherJsClient;
  /** Every (channel, event, data) the client's channels received, in order. */
  events: { channel: string; event: string; data: unknown }[];
  subscribe(channel: string): Promise<PusherJsChannel>;
  waitEvent(check: (e: { channel: string; event: string; data: unknown }) => boolean, what: string, timeoutMs?: number): Promise<void>;
  close(): void;
}

/**
 * A pusher-js client on a node, authorizing private and presence channels with the server library (as an app's
 * auth endpoint would). `user` is the presence user this client joins as.
 */
export async function pusherClient(
  url: string,
  options: { app?: typeof DEV_APP; user?: { user_id: string; user_info?: unknown }; extra?: Record<string, unknown> } = {},
): Promise<TestPusherClient> {
  const u = new URL(url);
  const app = options.app ?? DEV_APP;
  const lib = serverLib(url, app);
  const pusher = new PusherJs(app.key, {
    wsHost: u.hostname,
    wsPort: Number(u.port),
    forceTLS: false,
    enabledTransports: ['ws'],
    cluster: 'mt1',
    disableStats: true,
    channelAuthorization: {
      customHandler: (p: { socketId: string; channelName: string }, cb: (err: Error | null, auth: unknown) => void) =>
        cb(null, lib.authorizeChannel(p.socketId, p.channelName, p.channelName.startsWith('presence-') ? options.user ?? { user_id: 'anon' } : undefined)),
    },
    userAuthentication: {
      customHandler: (p: { socketId: string }, cb: (err: Error | null, auth: unknown) => void) =>
        cb(null, lib.authenticateUser(p.socketId, { id: options.user?.user_id ?? 'anon' })),
    },
    ...options.extra,
  });
  const events: { channel: string; event: string; data: unknown }[] = [];
  await eventually(() => pusher.connection.state === 'connected', 5000, 'pusher-js connected');
  const client: TestPusherClient = {
    pusher,
    events,
    subscribe: async (channel) => {
      const ch = pusher.subscribe(channel);
      ch.bind_global((event: string, data: unknown) => events.push({ channel, event, data }));
      let failed: unknown;
      ch.bind('pusher:subscription_error', (e) => (failed = e));
      await eventually(() => ch.subscribed || failed !== undefined, 5000, `subscribed to ${channel}`);
      if (failed !== undefined) throw Object.assign(new Error(`subscription to ${channel} failed: ${JSON.stringify(failed)}`), { detail: failed });
      return ch;
    },
    waitEvent: (check, what, timeoutMs = 5000) => eventually(() => events.some(check), timeoutMs, what),
    close: () => pusher.disconnect(),
  };
  return client;
}
