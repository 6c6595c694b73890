/**
 * `GET /sse` through the platform's EventSource. The client, not EventSource, owns reconnecting: on the first error
 * this transport closes the EventSource (which would otherwise retry on its own schedule, on the same transport,
 * without backoff) and reports the connection closed. Resume goes in `lastEventId=` because a fresh EventSource
 * cannot be given a Last-Event-ID header.
 *
 * With several channels, each event's `id:` is the connection's whole cursor; it is split back into per-channel
 * positions, which also carries positions that moved without a message (EventSource hides id-only events, but the
 * next event's id includes them).
 */
import { credentialParams, cursorLabels, cursorOf, dispatchFrame, JSON_DATA_PARAM, parseFrame, positionsOf, query } from '../wire.js';
import type { Transport } from './transport.js';
import { guardHandlers } from './transport.js';

export const sseTransport: Transport = {
  name: 'sse',
  available: (platform) => platform.EventSource !== undefined,
  open(req, outer, platform) {
    const Ctor = platform.EventSource;
    if (!Ctor) throw new Error('no EventSource on this platform: pass platform.EventSource');
    const guard = guardHandlers(outer);
    const h = guard.handlers;
    const labels = cursorLabels(req);
    const url = `${req.baseUrl}/sse${query([...credentialParams(req), JSON_DATA_PARAM, ['lastEventId', cursorOf(labels, req.since)]])}`;
    const es = new Ctor(url, { withCredentials: req.withCredentials });
    let opened = false;
    const end = (err: Error | undefined): void => {
      es.close();
      h.closed(err);
    };
    const onFrame = (ev: { data: string; lastEventId: string }): void => {
      const frame = parseFrame(ev.data);
      if (frame && dispatchFrame(frame, h)) {
        end(undefined);
        return;
      }
      // A one-channel cursor is the message id itself: nothing more to learn from it.
      if (labels.length > 1 && ev.lastEventId) {
        for (const [label, id] of positionsOf(labels, ev.lastEventId) ?? []) h.position(label, id);
      }
    };
    es.addEventListener('open', () => {
      opened = true;
      h.open();
    });
    es.addEventListener('message', onFrame);
    es.addEventListener('reload', onFrame);
    es.addEventListener('disconnect', onFrame);
    es.addEventListener('join', onFrame);
    es.addEventListener('leave', onFrame);
    es.addEventListener('unsubscribed', onFrame);
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
