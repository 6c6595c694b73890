/**
 * `GET /ws`: the JSON protocol of docs/protocol.md. The SDK opens a bare socket and subscribes with frames rather
 * than URL credentials, because only a `subscribe` frame can carry a per-channel `since`, and a token sent in a
 * `connect` frame stays out of URLs and logs. The connection counts as open once every subscribe is answered.
 *
 * Browsers answer the server's WebSocket pings without showing them, so a dead connection (a laptop waking up, a
 * proxy that dropped the flow) is found with the protocol's own `ping` op: one every `pingIntervalMs`; when the next
 * is due and nothing at all arrived since the last, the connection is given up and the client reconnects.
 *
 * With a token and a refresh callback, the token is replaced in place (`refresh` op) shortly before the
 * `expiresAt` the server announced, so a long-lived connection never has to be dropped for a new token.
 */
import { TOKEN_REFRESH_MARGIN_MS } from '../token.js';
import { memberOf } from '../wire.js';
import type { ServerDisconnect } from './transport.js';
import { guardHandlers, type Transport } from './transport.js';

/** Error codes of a reply that say which HTTP status the same refusal would have had (docs/protocol.md, codes). */
const STATUS_OF_CODE: Record<string, number> = {
  bad_request: 400,
  invalid_channel: 400,
  too_many_channels: 400,
  unauthorized: 401,
  token_expired: 401,
  forbidden: 403,
  origin_not_allowed: 403,
  too_many_requests: 429,
  unavailable: 503,
  broker_unavailable: 503,
};

/** The close (and error) code of `broker_unavailable`: the server's broker is down, retry shortly. */
const BROKER_UNAVAILABLE_CLOSE = 3016;

/** RFC 6455 codes after which reconnecting cannot help (protocol error, unacceptable data, policy, too big). */
const FINAL_RFC_CODES = new Set([1002, 1003, 1007, 1008, 1009]);

/**
 * How a close code reads: 3000-3499 reconnect, 3500-3999 don't, RFC codes as the RFC means them. An operator's code
 * (4000-4999, the server API's `disconnect`) says it in the reason text: `disconnected reconnect` or `disconnected`.
 */
export function closeInfo(code: number, reason: string): ServerDisconnect {
  if (code >= 4000 && code <= 4999) {
    const reconnect = / reconnect$/.test(reason);
    return { reason: reconnect ? reason.slice(0, -' reconnect'.length) : reason || `close ${code}`, code, reconnect };
  }
  const reconnect = code >= 3000 ? code < 3500 : !FINAL_RFC_CODES.has(code);
  return { reason: reason || `close ${code}`, code, reconnect };
}

function wsUrl(base: string): string {
  return base.replace(/^http/i, 'ws') + '/ws';
}

interface ServerFrame {
  type?: unknown;
  id?: unknown;
  channel?: unknown;
  data?: unknown;
  error?: unknown;
  reason?: unknown;
  result?: unknown;
  member?: unknown;
}

export const websocketTransport: Transport = {
  name: 'websocket',
  available: (platform) => platform.WebSocket !== undefined,
  open(req, outer, platform) {
    const Ctor = platform.WebSocket;
    if (!Ctor) throw new Error('no WebSocket on this platform: pass platform.WebSocket (e.g. the ws package)');
    const guard = guardHandlers(outer);
    const h = guard.handlers;
    const ws = new Ctor(wsUrl(req.baseUrl));
    const pending = new Set<number>();
    /** Requests made with `request()`, waiting for their answer. */
    const asked = new Map<number, { resolve(result: Record<string, unknown>): void; reject(err: Error): void }>();
    /** Ids of `connect`/`refresh` requests, whose replies carry the token's expiry. */
    const tokenRequests = new Set<number>();
    let refreshTimer: unknown;
    const scheduleRefresh = (result: unknown): void => {
      const expiresAt = typeof result === 'object' && result !== null && 'expiresAt' in result ? result.expiresAt : undefined;
      const refreshToken = req.refreshToken;
      if (typeof expiresAt !== 'number' || !refreshToken) return;
      const delay = Math.max(0, expiresAt - TOKEN_REFRESH_MARGIN_MS - platform.clock.now());
      refreshTimer = platform.clock.setTimeout(() => {
        refreshTimer = undefined;
        refreshToken().then(
          (token) => {
            if (guard.stopped()) return;
            const id = nextId++;
            tokenRequests.add(id);
            ws.send(JSON.stringify({ op: 'refresh', id, token }));
          },
          // The callback failed: the server will end the connection as expired, and the client gets a token then.
          () => undefined,
        );
      }, delay);
    };
    let opened = false;
    let nextId = 1;
    let heard = true;
    let pingTimer: unknown;
    const clock = platform.clock;
    const ping = (): void => {
      pingTimer = undefined;
      if (guard.stopped()) return;
      if (!heard) {
        fail(new Error(`no answer from the server for ${req.pingIntervalMs} ms`));
        return;
      }
      heard = false;
      ws.send(JSON.stringify({ op: 'ping', id: nextId++ }));
      pingTimer = clock.setTimeout(ping, req.pingIntervalMs);
    };
    const stopPing = (): void => {
      if (pingTimer !== undefined) clock.clearTimeout(pingTimer);
      if (refreshTimer !== undefined) clock.clearTimeout(refreshTimer);
      pingTimer = refreshTimer = undefined;
    };
    const markOpen = (): void => {
      opened = true;
      if (req.pingIntervalMs > 0) pingTimer = clock.setTimeout(ping, req.pingIntervalMs);
      h.open();
    };
    const send = (frame: Record<string, unknown>): number => {
      const id = nextId++;
      pending.add(id);
      ws.send(JSON.stringify({ ...frame, id }));
      return id;
    };
    const fail = (err: Error, status?: number): void => {
      stopPing();
      ws.close(1000);
      h.closed(err, status);
    };

    ws.addEventListener('open', () => {
      if (req.token !== undefined) tokenRequests.add(send({ op: 'connect', token: req.token }));
      const jl = req.joinLeave ? { joinLeave: true } : {};
      for (const channel of req.channels) send({ op: 'subscribe', channel, since: req.since.get(channel), ...jl });
      for (const key of req.keys) send({ op: 'subscribe', key, since: req.since.get(key), ...jl });
      if (pending.size === 0) markOpen();
    });
    ws.addEventListener('message', (ev) => {
      heard = true;
      if (typeof ev.data !== 'string') return;
      let f: ServerFrame;
      try {
        const v: unknown = JSON.parse(ev.data);
        if (typeof v !== 'object' || v === null) return;
        f = v as ServerFrame;
      } catch {
        return;
      }
      if (f.type === 'message' && typeof f.channel === 'string' && f.data !== undefined) {
        h.message(f.channel, f.data, typeof f.id === 'string' ? f.id : undefined);
      } else if (f.type === 'reload' && typeof f.channel === 'string') {
        const id = typeof f.id === 'string' && f.id !== '' ? f.id : undefined;
        h.missed([f.channel], typeof f.reason === 'string' ? f.reason : 'missed', id);
      } else if (f.type === 'position' && typeof f.channel === 'string' && typeof f.id === 'string' && f.id !== '') {
        h.position(f.channel, f.id);
      } else if ((f.type === 'join' || f.type === 'leave') && typeof f.channel === 'string') {
        const member = memberOf(f.member);
        if (member) h.presence(f.type, f.channel, member);
      } else if (f.type === 'unsubscribed' && typeof f.channel === 'string') {
        h.unsubscribed(f.channel);
      } else if ((f.type === 'reply' || f.type === 'error') && typeof f.id === 'number' && asked.has(f.id)) {
        const answer = asked.get(f.id)!;
        asked.delete(f.id);
        if (f.type === 'reply') answer.resolve(typeof f.result === 'object' && f.result !== null ? (f.result as Record<string, unknown>) : {});
        else {
          const e = typeof f.error === 'object' && f.error !== null ? (f.error as { code?: unknown; message?: unknown }) : {};
          answer.reject(new Error(`${typeof e.code === 'string' ? e.code : 'error'}: ${typeof e.message === 'string' ? e.message : 'refused'}`));
        }
      } else if (f.type === 'reply' && typeof f.id === 'number') {
        if (tokenRequests.delete(f.id)) scheduleRefresh(f.result);
        if (pending.delete(f.id) && pending.size === 0 && !opened) markOpen();
      } else if (f.type === 'error' && typeof f.id === 'number' && tokenRequests.delete(f.id) && opened) {
        // A refused refresh: keep the connection until the server ends it as expired.
      } else if (f.type === 'error' && typeof f.id === 'number' && pending.has(f.id)) {
        const e = typeof f.error === 'object' && f.error !== null ? (f.error as { code?: unknown; message?: unknown }) : {};
        const code = typeof e.code === 'string' ? e.code : 'error';
        if (code === 'broker_unavailable') h.disconnect({ reason: code, code: BROKER_UNAVAILABLE_CLOSE, reconnect: true });
        fail(new Error(`${code}: ${typeof e.message === 'string' ? e.message : 'refused'}`), STATUS_OF_CODE[code]);
      }
    });
    ws.addEventListener('close', (ev) => {
      stopPing();
      for (const a of asked.values()) a.reject(new Error('connection closed'));
      asked.clear();
      // 1005/1006: no close frame (network loss, refused handshake): nothing the server said.
      if (ev.code !== 1005 && ev.code !== 1006 && ev.code !== 1000) {
        const info = closeInfo(ev.code, ev.reason);
        if (info.reason === 'insufficient_state') h.missed([], info.reason, undefined);
        h.disconnect(info);
      }
      h.closed(opened ? undefined : new Error(`WebSocket closed before subscribing (${ev.code})`));
    });
    ws.addEventListener('error', () => {
      // A close event follows; errors carry no detail in browsers.
    });
    return {
      close: () => {
        guard.stop();
        stopPing();
        for (const a of asked.values()) a.reject(new Error('connection closed'));
        asked.clear();
        ws.close(1000);
      },
      // Changes after the opening: their answers are not waited for (an error shows as the server's frames do).
      subscribe: (channel, since) => {
        ws.send(JSON.stringify({ op: 'subscribe', id: nextId++, channel, since, ...(req.joinLeave ? { joinLeave: true } : {}) }));
      },
      unsubscribe: (channel) => {
        ws.send(JSON.stringify({ op: 'unsubscribe', id: nextId++, channel }));
      },
      request: (op, fields) =>
        new Promise((resolve, reject) => {
          if (!opened || guard.stopped()) return reject(new Error('not connected'));
          const id = nextId++;
          asked.set(id, { resolve, reject });
          ws.send(JSON.stringify({ ...fields, op, id }));
        }),
    };
  },
};
