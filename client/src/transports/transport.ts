/**
 * The seam between the client and a wire: each transport opens one connection for every channel of the client,
 * reports what arrives in the same few callbacks, and knows nothing about reconnecting, resuming or deduplicating.
 */
import type { ResolvedPlatform } from '../platform.js';
import type { PresenceMember, TransportName } from '../types.js';

/** What one connection attempt asks for. */
export interface ConnectRequest {
  /** `http(s)://host[:port]` plus the path prefix, without a trailing slash. */
  readonly baseUrl: string;
  readonly channels: readonly string[];
  readonly keys: readonly string[];
  readonly token: string | undefined;
  /** Resume positions: channel label → the last id the application saw on it. */
  readonly since: ReadonlyMap<string, string>;
  readonly withCredentials: boolean;
  /** Abort a long-poll that has not answered after this many ms (the server answers within its own poll timeout). */
  readonly pollAbortMs: number;
  /** A fresh token from the application's callback (also kept by the client for later connections). */
  readonly refreshToken: (() => Promise<string>) | undefined;
  /** WebSocket: send a `ping` op this often and give up when nothing arrives for a whole interval (0: never). */
  readonly pingIntervalMs: number;
  /** Ask for join and leave events. */
  readonly joinLeave: boolean;
}

/** How the server ended a stream: its last frame. */
export interface ServerDisconnect {
  readonly reason: string;
  readonly code: number;
  readonly reconnect: boolean;
}

export interface TransportHandlers {
  /** The subscriptions are live. */
  open(): void;
  message(channel: string, data: unknown, id: string | undefined): void;
  /**
   * The server said messages were missed (history no longer covers the gap); `id`, when given, is the channel's
   * position from now on. `channels` empty: every channel.
   */
  missed(channels: readonly string[], reason: string, id: string | undefined): void;
  /** A channel's position moved without a message. */
  position(channel: string, id: string): void;
  /** The server's last frame, before `closed`. */
  disconnect(info: ServerDisconnect): void;
  /** A client joined or left a channel (presence). `member` is the server's member object, unchecked beyond its shape. */
  presence(kind: 'join' | 'leave', channel: string, member: PresenceMember): void;
  /** The server took a channel off this connection. */
  unsubscribed(channel: string): void;
  /**
   * The connection is gone, whether it ever opened or not. Called at most once, and never after the client's own
   * `close()`. `status` is the HTTP status of a refused request, when the transport can see it.
   */
  closed(error: Error | undefined, status?: number): void;
}

export interface TransportConnection {
  /** Close without calling any handler again. */
  close(): void;
  /** Transports that can change their channels in place (WebSocket); the others are reopened with the new set. */
  subscribe?(channel: string, since: string | undefined): void;
  unsubscribe?(channel: string): void;
  /** A request with an answer on the open connection (WebSocket: `presence`, `presence_stats`). */
  request?(op: string, fields: Record<string, unknown>): Promise<Record<string, unknown>>;
}

export interface Transport {
  readonly name: TransportName;
  /** Does the platform have what this transport needs? */
  available(platform: ResolvedPlatform): boolean;
  open(request: ConnectRequest, handlers: TransportHandlers, platform: ResolvedPlatform): TransportConnection;
}

/** A handler set that forwards only until the connection is closed by either side, so each ends exactly once. */
export function guardHandlers(handlers: TransportHandlers): { handlers: TransportHandlers; stop(): void; stopped(): boolean } {
  let live = true;
  return {
    stop: () => {
      live = false;
    },
    stopped: () => !live,
    handlers: {
      open: () => live && handlers.open(),
      message: (c, d, id) => live && handlers.message(c, d, id),
      missed: (c, r, id) => live && handlers.missed(c, r, id),
      position: (c, id) => live && handlers.position(c, id),
      disconnect: (info) => live && handlers.disconnect(info),
      presence: (kind, c, m) => live && handlers.presence(kind, c, m),
      unsubscribed: (c) => live && handlers.unsubscribed(c),
      closed: (err, status) => {
        if (!live) return;
        live = false;
        handlers.closed(err, status);
      },
    },
  };
}
