/**
 * `GET /poll`: long-polling, for networks whose proxies break streams. Each answer is a batch of the same arrays a
 * stream carries plus a cursor; the next request sends the cursor back at once.
 *
 * The server says nothing until it has messages or its poll timeout passes, so this transport reports `open` as soon
 * as the first request is on its way (the client would otherwise sit in "connecting" for a quiet channel's whole
 * poll timeout); if that request fails before any answer, it reports the connection unconfirmed, and the client
 * counts it as a failed attempt (backoff grows, the next transport is tried).
 */
import { credentialParams, cursorLabels, cursorOf, dispatchFrame, frameOf, query } from '../wire.js';
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

export const pollTransport: Transport = {
  name: 'poll',
  handshakeTimeout: false,
  available: (platform) => platform.fetch !== undefined,
  open(req, outer, platform) {
    const fetch = platform.fetch;
    if (!fetch) throw new Error('no fetch on this platform: pass platform.fetch');
    const guard = guardHandlers(outer);
    const h = guard.handlers;
    const base = `${req.baseUrl}/poll`;
    const creds = credentialParams(req);
    let cursor = cursorOf(cursorLabels(req), req.since);
    let controller = platform.AbortController ? new platform.AbortController() : undefined;
    let answered = false;

    const loop = async (): Promise<void> => {
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
          h.closed(err instanceof Error ? err : new Error(String(err)), undefined, !answered);
          return;
        } finally {
          platform.clock.clearTimeout(timer);
        }
        if (guard.stopped()) return;
        const answer = status === 200 ? parseAnswer(text) : undefined;
        if (!answer) {
          h.closed(new Error(`poll answered ${status}`), status === 200 ? undefined : status, !answered);
          return;
        }
        answered = true;
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
    // Handlers are called only after open() has returned, as on every other transport.
    void Promise.resolve().then(() => {
      h.open();
      return loop();
    });
    return {
      close: () => {
        guard.stop();
        controller?.abort();
      },
    };
  },
};
