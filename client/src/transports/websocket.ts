/**
 * `GET /ws`: the JSON protocol of docs/protocol.md. The SDK opens a bare socket and subscribes with frames rather
 * than URL credentials, because only a `subscribe` frame can carry a per-channel `since`, and a token sent in a
 * `connect` frame stays out of URLs and logs. The connection counts as open once every subscribe is answered.
 */
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
};

/** RFC 6455 codes after which reconnecting cannot help (protocol error, unacceptable data, policy, too big). */
const FINAL_RFC_CODES = new Set([1002, 1003, 1007, 1008, 1009]);

/** How a close code reads: 3000-3499 reconnect, 3500-3999 don't, RFC codes as the RFC means them. */
export function closeInfo(code: number, reason: string): ServerDisconnect {
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
    let opened = false;
    let nextId = 1;
    const send = (frame: Record<string, unknown>): number => {
      const id = nextId++;
      pending.add(id);
      ws.send(JSON.stringify({ ...frame, id }));
      return id;
    };
    const fail = (err: Error, status?: number): void => {
      ws.close(1000);
      h.closed(err, status);
    };

    ws.addEventListener('open', () => {
      if (req.token !== undefined) send({ op: 'connect', token: req.token });
      for (const channel of req.channels) send({ op: 'subscribe', channel, since: req.since.get(channel) });
      for (const key of req.keys) send({ op: 'subscribe', key, since: req.since.get(key) });
      if (pending.size === 0) {
        opened = true;
        h.open();
      }
    });
    ws.addEventListener('message', (ev) => {
      if (typeof ev.data !== 'string') return;
      let f: ServerFrame;
      try {
        const v: unknown = JSON.parse(ev.data);
        if (typeof v !== 'object' || v === null) return;
        f = v as ServerFrame;
      } catch {
        return;
      }
      if (f.type === 'message' && typeof f.channel === 'string' && typeof f.data === 'string') {
        h.message(f.channel, f.data, typeof f.id === 'string' ? f.id : undefined);
      } else if (f.type === 'reload' && typeof f.channel === 'string') {
        const id = typeof f.id === 'string' && f.id !== '' ? f.id : undefined;
        h.missed([f.channel], typeof f.reason === 'string' ? f.reason : 'missed', id);
      } else if (f.type === 'position' && typeof f.channel === 'string' && typeof f.id === 'string' && f.id !== '') {
        h.position(f.channel, f.id);
      } else if (f.type === 'reply' && typeof f.id === 'number' && pending.delete(f.id) && pending.size === 0 && !opened) {
        opened = true;
        h.open();
      } else if (f.type === 'error' && typeof f.id === 'number' && pending.has(f.id)) {
        const e = typeof f.error === 'object' && f.error !== null ? (f.error as { code?: unknown; message?: unknown }) : {};
        const code = typeof e.code === 'string' ? e.code : 'error';
        fail(new Error(`${code}: ${typeof e.message === 'string' ? e.message : 'refused'}`), STATUS_OF_CODE[code]);
      }
    });
    ws.addEventListener('close', (ev) => {
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
        ws.close(1000);
      },
    };
  },
};
