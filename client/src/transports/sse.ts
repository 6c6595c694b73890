/**
 * `GET /sse` through the platform's EventSource. The client, not EventSource, owns reconnecting: on the first error
 * this transport closes the EventSource (which would otherwise retry on its own schedule, on the same transport,
 * without backoff) and reports the connection closed. Resume goes in `lastEventId=` because a fresh EventSource
 * cannot be given a Last-Event-ID header.
 */
import { credentialParams, cursorOf, MISSED_REASON, parseFrame, query } from '../wire.js';
import type { Transport } from './transport.js';
import { guardHandlers } from './transport.js';

export const sseTransport: Transport = {
  name: 'sse',
  handshakeTimeout: true,
  available: (platform) => platform.EventSource !== undefined,
  open(req, outer, platform) {
    const Ctor = platform.EventSource;
    if (!Ctor) throw new Error('no EventSource on this platform: pass platform.EventSource');
    const guard = guardHandlers(outer);
    const h = guard.handlers;
    const cursor = cursorOf([...req.channels, ...req.keys], req.since);
    const url = `${req.baseUrl}/sse${query([...credentialParams(req), ['lastEventId', cursor]])}`;
    const es = new Ctor(url, { withCredentials: req.withCredentials });
    let opened = false;
    const end = (err: Error | undefined): void => {
      es.close();
      h.closed(err);
    };
    es.addEventListener('open', () => {
      opened = true;
      h.open();
    });
    es.addEventListener('message', (ev) => {
      const frame = parseFrame(ev.data);
      if (frame?.kind === 'message') h.message(frame.channel, frame.data, frame.id ?? (ev.lastEventId || undefined));
    });
    es.addEventListener('missed', (ev) => {
      const frame = parseFrame(ev.data);
      if (frame?.kind === 'missed') h.missed([frame.channel], 'missed');
    });
    es.addEventListener('disconnect', (ev) => {
      const frame = parseFrame(ev.data);
      if (frame?.kind !== 'disconnect') return;
      if (frame.info.reason === MISSED_REASON) h.missed([], frame.info.reason);
      h.disconnect(frame.info);
      end(undefined);
    });
    es.addEventListener('error', () => {
      end(new Error(opened ? 'SSE stream lost' : 'SSE connection failed'));
    });
    return {
      close: () => {
        guard.stop();
        es.close();
      },
    };
  },
};
