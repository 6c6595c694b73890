/**
 * `GET /poll`: long-polling, for networks whose proxies break streams. Each answer is a batch of the same arrays a
 * stream carries plus a cursor; the next request sends the cursor back at once.
 *
 * The server says nothing until it has messages or its poll timeout passes, so this transport reports `open` at the
 * first answer or once the first request has been waiting OPEN_GRACE_MS without failing: a refused or broken request
 * fails well within that, while a parked poll would otherwise leave the client "connecting" for a quiet channel's
 * whole poll timeout.
 */
import { credentialParams, cursorLabels, cursorOf, dispatchFrame, frameOf, JSON_DATA_PARAM, query } from '../wire.js';
import { guardHandlers, type Transport } from './transport.js';

interface PollAnswer {
  messages: unknown[];
  cursor: string | undefined;
}

function parseAnswer(text: string): PollAnswer | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || !('messages' in v) || !Array.isArray(v.messages)) return undefined;
  const cursor = 'cursor' in v && typeof v.cursor === 'string' ? v.cursor : undefined;
  return { messages: v.messages as unknown[], cursor };
}

/** The `code` of a JSON error body, or undefined. */
function errorCodeOf(text: string): string | undefined {
  try {
    const v: unknown = JSON.parse(text);
    const e = typeof v === 'object' && v !== null && 'error' in v ? v.error : undefined;
    return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string' ? e.code : undefined;
  } catch {
    return undefined;
  }
}

/** A first poll still pending after this long was taken by the server: the connection counts as open. */
export const OPEN_GRACE_MS = 1000;

export const pollTransport: Transport = {
  name: 'poll',
  available: (platform) => platform.fetch !== undefined,
  open(req, outer, platform) {
    const fetch = platform.fetch;
    if (!fetch) throw new Error('no fetch on this platform: pass platform.fetch');
    const guard = guardHandlers(outer);
    const h = guard.handlers;
    const base = `${req.baseUrl}/poll`;
    const creds = [...credentialParams(req), JSON_DATA_PARAM];
    let cursor = cursorOf(cursorLabels(req), req.since);
    let controller = platform.AbortController ? new platform.AbortController() : undefined;
    let opened = false;
    const open = (): void => {
      if (opened || guard.stopped()) return;
      opened = true;
      platform.clock.clearTimeout(grace);
      h.open();
    };
    const grace = platform.clock.setTimeout(open, OPEN_GRACE_MS);

    const loop = async (): Promise<void> => {
      // Report nothing before open() has returned, as the other transports do.
      await Promise.resolve();
      while (!guard.stopped()) {
        controller = platform.AbortController ? new platform.AbortController() : undefined;
        const abort = controller;
        const timer = platform.clock.setTimeout(() => abort?.abort(), req.pollAbortMs);
        let status: number;
        let text: string;
        try {
          const res = await fetch(`${base}${query([...creds, ['since', cursor]])}`, {
            credentials: req.withCredentials ? 'include' : 'same-origin',
            // Only the platform's own AbortSignal fits its fetch; see FetchLike.
            ...(abort ? { signal: abort.signal as never } : {}),
          });
          status = res.status;
          text = await res.text();
        } catch (err) {
          platform.clock.clearTimeout(grace);
          h.closed(err instanceof Error ? err : new Error(String(err)));
          return;
        } finally {
          platform.clock.clearTimeout(timer);
        }
        if (guard.stopped()) return;
        const answer = status === 200 ? parseAnswer(text) : undefined;
        if (!answer) {
          platform.clock.clearTimeout(grace);
          // 503 broker_unavailable: the server's broker is down (it held this poll a while first). Retry shortly.
          if (status === 503 && errorCodeOf(text) === 'broker_unavailable') {
            h.disconnect({ reason: 'broker_unavailable', code: 3016, reconnect: true });
          }
          h.closed(new Error(`poll answered ${status}`), status === 200 ? undefined : status);
          return;
        }
        open();
        for (const item of answer.messages) {
          const frame = frameOf(item);
          if (frame && dispatchFrame(frame, h)) {
            h.closed(undefined);
            return;
          }
          if (guard.stopped()) return;
        }
        if (answer.cursor !== undefined) cursor = answer.cursor;
      }
    };
    void loop();
    return {
      close: () => {
        guard.stop();
        platform.clock.clearTimeout(grace);
        controller?.abort();
      },
    };
  },
};
