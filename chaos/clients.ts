/**
 * The subscribers of a chaos run, one per transport: /sub with since=, /sse through the `eventsource` package (a
 * standard EventSource: it reconnects by itself and gives up on a non-200 answer), /ws, /poll, and the SDK. Each
 * listens to one channel and records what it receives in a Trace: the `m<seq>` messages in order, where reloads came,
 * when it lost and regained its stream, and every retry signal the server gave it.
 *
 * The hand-written clients (sub, ws, poll) behave as docs/protocol.md "Writing a client" says: on any end or refusal
 * they reconnect with a full-jitter backoff and resume from their last id. EventSource and the SDK use their own
 * logic, unhelped: an EventSource that closes is a client that gave up, and counts as a failure.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { EventSource, type FetchLike } from 'eventsource';
import WebSocket from 'ws';
import { HeraldClient } from '@herald/client';

export const KINDS = ['sub', 'sse', 'ws', 'poll', 'sdk'] as const;
export type Kind = (typeof KINDS)[number];

/** Backoff of the hand-written clients: full jitter, 100 ms doubling to a 1 s ceiling (a client that wants back fast). */
const BACKOFF_BASE_MS = 100;
const BACKOFF_CAP_MS = 1000;
/**
 * docs/protocol.md "Writing a client": a request head unanswered this long is a dead attempt (a node that accepted
 * the connection as it died, or a SYN lost in a full accept queue), and silence for longer than two heartbeat
 * intervals (the chaos nodes keep the default 25 s) is a dead stream. Without them a client can wait for ever.
 */
const ANSWER_TIMEOUT_MS = 10_000;
const SILENCE_TIMEOUT_MS = 2 * 25_000 + 5_000;
/** A poll is answered within pollTimeoutSeconds (25 s by default): past that and the answer timeout, it is dead. */
const POLL_TIMEOUT_MS = 25_000 + ANSWER_TIMEOUT_MS;

/** What one client saw. Plain fields: a fleet process holds a thousand of these. */
export class Trace {
  readonly seqs: number[] = [];
  readonly times: number[] = [];
  /** When each delivered message was sent (its publisher's clock = ours: one machine). */
  readonly sent: number[] = [];
  /** Delivery latency per message (ms, publisher's clock = ours: one machine). */
  readonly latencies: number[] = [];
  /** Number of messages delivered before each reload. */
  readonly missedAt: number[] = [];
  /** Time from losing the stream to having it live again, per loss. */
  readonly resumeMs: number[] = [];
  readonly signals: Record<string, number> = {};
  connects = 0;
  /** The client stopped for good on its own (an EventSource CLOSED, an SDK that will not reconnect). */
  gaveUp = false;
  /** Answers a client may not retry (4xx other than 429, close 3500-3999): a bug in a chaos run. */
  fatal = 0;
  private downSince: number | undefined = undefined;

  constructor(readonly kind: Kind, readonly channel: string) {}

  get live(): boolean {
    return this.connects > 0 && this.downSince === undefined;
  }

  up(): void {
    if (this.downSince !== undefined) this.resumeMs.push(Date.now() - this.downSince);
    this.downSince = undefined;
    this.connects++;
  }

  down(): void {
    if (this.downSince === undefined && this.connects > 0) this.downSince = Date.now();
  }

  signal(what: string): void {
    this.signals[what] = (this.signals[what] ?? 0) + 1;
  }

  /** A message's data is `m<seq> <sent ms> [padding]`; warm-up messages (`w`) only move the position. */
  message(data: string): void {
    if (!data.startsWith('m')) return;
    const now = Date.now();
    this.seqs.push(parseInt(data.slice(1), 10));
    this.times.push(now);
    const sent = Number(data.split(' ', 2)[1]);
    this.sent.push(Number.isFinite(sent) ? sent : now);
    if (Number.isFinite(sent)) this.latencies.push(now - sent);
  }

  reload(): void {
    this.missedAt.push(this.seqs.length);
  }
}

export interface Client {
  readonly trace: Trace;
  close(): void;
}

export interface ClientOptions {
  /** http://host:port of the node (or the balancer in front of the nodes). */
  readonly base: string;
  readonly channel: string;
  /** Source address for this client's sockets (127.0.0.x), to spread a storm over addresses. */
  readonly localAddress?: string;
}

export function openClient(kind: Kind, o: ClientOptions): Client {
  const trace = new Trace(kind, o.channel);
  switch (kind) {
    case 'sub':
      return new SubClient(trace, o);
    case 'sse':
      return sseClient(trace, o);
    case 'ws':
      return new WsClient(trace, o);
    case 'poll':
      return new PollClient(trace, o);
    case 'sdk':
      return sdkClient(trace, o);
  }
}

/** Record a refusal: its status, and whether it carried Retry-After (the documented "retry" signal). */
function refusal(trace: Trace, status: number, retryAfter: unknown): void {
  trace.signal(`http ${status}${retryAfter === undefined || retryAfter === null ? '' : ' + Retry-After'}`);
  if (status >= 400 && status < 500 && status !== 429 && status !== 408) trace.fatal++;
}

type Line = [string, ...unknown[]];

/** Apply one /sub line (also a /poll element): a message, a reload, a position or the stream's last words. */
function applyLine(trace: Trace, l: Line, setId: (id: string) => void): void {
  const id = (i: number): void => {
    const v = l[i];
    if (typeof v === 'string' && v !== '') setId(v);
  };
  switch (l[0]) {
    case 'message':
      trace.message(String(l[2]));
      id(3);
      break;
    case 'reload':
      trace.reload();
      id(3);
      break;
    case 'position':
      id(2);
      break;
    case 'disconnect':
      trace.signal(`disconnect ${String(l[1])}`);
      if (l[3] === false) trace.fatal++;
      break;
    default:
      trace.signal(`line ${String(l[0])}`);
  }
}

/** The reconnect loop shared by the hand-written clients. */
abstract class Reconnecting implements Client {
  protected lastId = '';
  protected closed = false;
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly trace: Trace, protected readonly o: ClientOptions) {
    this.connect();
  }

  protected abstract connect(): void;
  protected abstract stop(): void;

  protected live(): void {
    this.attempt = 0;
    this.trace.up();
  }

  protected retry(): void {
    this.trace.down();
    if (this.closed || this.timer) return;
    const delay = Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** this.attempt++);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.closed) this.connect();
    }, delay);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.stop();
  }
}

class SubClient extends Reconnecting {
  private req: http.ClientRequest | undefined;

  protected connect(): void {
    const url = `${this.o.base}/sub?channel=${encodeURIComponent(this.o.channel)}&since=${encodeURIComponent(this.lastId)}`;
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      this.retry();
    };
    const req = http.get(url, { agent: false, localAddress: this.o.localAddress }, (res) => {
      if (res.statusCode !== 200) {
        refusal(this.trace, res.statusCode ?? 0, res.headers['retry-after']);
        res.resume();
        res.on('end', end);
        res.on('error', end);
        return;
      }
      this.live();
      // The socket's own idle timer (no timer of ours): any byte, heartbeats included, resets it.
      req.setTimeout(SILENCE_TIMEOUT_MS);
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let i: number;
        while ((i = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, i);
          buffer = buffer.slice(i + 1);
          if (line !== '') applyLine(this.trace, JSON.parse(line) as Line, (id) => (this.lastId = id));
        }
      });
      res.on('end', end);
      res.on('close', end);
      res.on('error', end);
    });
    req.on('error', end);
    req.on('close', end);
    req.setTimeout(ANSWER_TIMEOUT_MS, () => {
      this.trace.signal('timeout');
      req.destroy();
    });
    this.req = req;
  }

  protected stop(): void {
    this.req?.destroy();
  }
}

class PollClient extends Reconnecting {
  private req: http.ClientRequest | undefined;
  private cursor: string | undefined = undefined;

  protected connect(): void {
    const since = this.cursor === undefined ? '' : `&since=${encodeURIComponent(this.cursor)}`;
    const url = `${this.o.base}/poll?channel=${encodeURIComponent(this.o.channel)}${since}`;
    let failed = false;
    const fail = (): void => {
      if (failed) return;
      failed = true;
      this.retry();
    };
    const req = http.get(url, { agent: false, localAddress: this.o.localAddress }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('error', fail);
      res.on('end', () => {
        if (res.statusCode !== 200) {
          refusal(this.trace, res.statusCode ?? 0, res.headers['retry-after']);
          return fail();
        }
        // Only the first answer, or the first after a failure, is a (re)connection: not every poll.
        if (!this.trace.live) this.live();
        const answer = JSON.parse(body) as { messages: Line[]; cursor: string };
        for (const l of answer.messages) applyLine(this.trace, l, () => undefined);
        this.cursor = answer.cursor;
        if (!this.closed) this.connect();
      });
    });
    req.on('error', fail);
    req.setTimeout(POLL_TIMEOUT_MS, () => {
      this.trace.signal('timeout');
      req.destroy();
    });
    this.req = req;
  }

  protected stop(): void {
    this.req?.destroy();
  }
}

class WsClient extends Reconnecting {
  private ws: WebSocket | undefined;

  protected connect(): void {
    const ws = new WebSocket(`${this.o.base.replace(/^http/, 'ws')}/ws`, { localAddress: this.o.localAddress, handshakeTimeout: ANSWER_TIMEOUT_MS });
    this.ws = ws;
    // The socket (documented: the upgrade response's) for its idle timer, set once open (ws clears it then).
    let socket: Socket | undefined;
    ws.once('upgrade', (res) => (socket = res.socket));
    ws.on('open', () => {
      // The subscribe's reply within the answer timeout, then never silent for longer than two heartbeats (the node
      // pings every heartbeat; any frame or ping resets the socket's idle timer: no timer of ours).
      socket?.setTimeout(ANSWER_TIMEOUT_MS, () => {
        this.trace.signal('timeout');
        ws.terminate();
      });
      ws.once('message', () => socket?.setTimeout(SILENCE_TIMEOUT_MS));
      ws.send(JSON.stringify({ op: 'subscribe', id: 1, channel: this.o.channel, since: this.lastId }));
    });
    ws.on('unexpected-response', (req, res) => {
      refusal(this.trace, res.statusCode ?? 0, res.headers['retry-after']);
      res.resume();
      req.destroy();
      this.retry();
    });
    ws.on('message', (raw) => {
      const f = JSON.parse(String(raw)) as { type: string; id?: unknown; data?: string; reason?: string; error?: { code: string } };
      const id = typeof f.id === 'string' && f.id !== '' ? f.id : undefined;
      if (f.type === 'message') {
        this.trace.message(f.data ?? '');
        if (id) this.lastId = id;
      } else if (f.type === 'reload') {
        this.trace.reload();
        if (id) this.lastId = id;
      } else if (f.type === 'position') {
        if (id) this.lastId = id;
      } else if (f.type === 'reply') {
        this.live();
      } else if (f.type === 'error') {
        // A refused subscribe (e.g. unavailable while the broker is down): drop the socket and try again.
        this.trace.signal(`ws error ${f.error?.code ?? '?'}`);
        ws.terminate();
      }
    });
    ws.on('close', (code) => {
      this.trace.signal(`ws close ${code}`);
      if (code >= 3500 && code <= 3999) this.trace.fatal++;
      this.retry();
    });
    ws.on('error', () => this.retry());
  }

  protected stop(): void {
    this.ws?.terminate();
  }
}

/** `fetch` over node:http, so an EventSource's sockets can have a source address (node 20's fetch cannot). */
function fetchFrom(localAddress: string | undefined): FetchLike {
  return (url, init) =>
    new Promise((resolve, reject) => {
      const req = http.get(String(url), { agent: false, localAddress, headers: init.headers }, (res) => {
        resolve({
          body: Readable.toWeb(res) as ReadableStream<Uint8Array>,
          url: String(url),
          status: res.statusCode ?? 0,
          redirected: false,
          headers: {
            get: (name: string) => {
              const v = res.headers[name.toLowerCase()];
              return v === undefined ? null : Array.isArray(v) ? v.join(', ') : String(v);
            },
          },
        });
      });
      req.on('error', reject);
      // A platform's network timeout on the answer (browsers and fetch have one); the stream itself is left to the
      // EventSource, which, like a browser's, has no silence timeout.
      req.setTimeout(ANSWER_TIMEOUT_MS, () => req.destroy(new Error('no answer within the timeout')));
      req.once('response', () => req.setTimeout(0));
      const signal = init.signal as AbortSignal | undefined;
      signal?.addEventListener('abort', () => req.destroy(new DOMException('aborted', 'AbortError')), { once: true });
    });
}

function sseClient(trace: Trace, o: ClientOptions): Client {
  const es = new EventSource(`${o.base}/sse?channel=${encodeURIComponent(o.channel)}`, { fetch: fetchFrom(o.localAddress) });
  let closedByUs = false;
  es.addEventListener('open', () => trace.up());
  es.addEventListener('message', (e) => {
    const l = JSON.parse(e.data) as Line;
    if (l[0] === 'message') trace.message(String(l[2]));
  });
  es.addEventListener('reload', () => trace.reload());
  es.addEventListener('disconnect', (e) => {
    const l = JSON.parse(e.data) as Line;
    trace.signal(`disconnect ${String(l[1])}`);
  });
  es.addEventListener('error', (e) => {
    trace.down();
    const code = (e as { code?: number }).code;
    if (code !== undefined) refusal(trace, code, undefined);
    if (es.readyState === EventSource.CLOSED && !closedByUs) {
      // A standard EventSource that stopped: a page stranded until someone reloads it.
      trace.gaveUp = true;
      trace.signal('eventsource closed');
    }
  });
  return {
    trace,
    close() {
      closedByUs = true;
      es.close();
    },
  };
}

function sdkClient(trace: Trace, o: ClientOptions): Client {
  const localAddress = o.localAddress;
  // The SDK takes a WebSocket class; this one binds the source address.
  class BoundWebSocket extends WebSocket {
    constructor(url: string) {
      super(url, { localAddress });
    }
  }
  const client = new HeraldClient(o.base, { channels: [o.channel], platform: { WebSocket: BoundWebSocket } });
  client.on('connected', () => trace.up());
  client.on('disconnected', (e) => {
    trace.down();
    trace.signal(`sdk ${e.reason}`);
    if (!e.reconnect && e.reason !== 'client') trace.gaveUp = true;
  });
  client.on('message', (m) => trace.message(String(m.data)));
  client.on('missed', () => trace.reload());
  client.on('error', (e) => trace.signal(`sdk error ${e.type}`));
  client.connect();
  return { trace, close: () => client.disconnect() };
}
