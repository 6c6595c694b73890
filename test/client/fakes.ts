/**
 * Fakes for the SDK's tests, where a real part cannot fail on cue: a manual clock, a fixed "random", and a scripted
 * HTTP server that speaks just enough SSE and long-polling to accept, refuse, hang or drop a client when told to.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { ClientEvents, Clock, HeraldClient } from '@herald/client';
import { WebSocketServer, type WebSocket } from 'ws';

/** Timers that fire only when the test advances time. */
export class FakeClock implements Clock {
  private time = 1_000_000;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.time;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.time + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  /** Delays of the pending timers, soonest first. */
  pending(): number[] {
    return [...this.timers.values()].map((t) => t.at - this.time).sort((a, b) => a - b);
  }
  /** Move time forward, firing every timer that falls due, in order. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.time = next[1].at;
      next[1].fn();
    }
    this.time = end;
  }
}

/**
 * How requests are met: served, refused with `refuseStatus`, left unanswered, or cut at once (a dead server);
 * `broker_down` answers as Herald does once `brokerWaitMs` passed without its broker: `/sse` 200 with a retry hint
 * and a `broker_unavailable` disconnect event, then the end; `/poll` 503 `broker_unavailable`.
 */
export type Mode = 'accept' | 'refuse' | 'hang' | 'drop' | 'broker_down';

export interface SeenRequest {
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: http.IncomingHttpHeaders;
}

/**
 * A real HTTP server on 127.0.0.1 whose behaviour the test scripts: `mode` decides how the next requests are
 * answered; `send` writes an SSE event to every open stream; `drop` cuts every connection.
 */
export class ScriptedServer {
  mode: Mode = 'accept';
  /** Status of a refused request. */
  refuseStatus = 503;
  /** How `GET /readyz` is answered: a status, left unanswered, cut; undefined: as `mode` says. */
  readyz: number | 'hang' | 'drop' | undefined;
  readonly requests: SeenRequest[] = [];
  private readonly streams = new Set<http.ServerResponse>();
  /** Long-polls waiting for an answer, oldest first. */
  private readonly polls: http.ServerResponse[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly waiters: (() => void)[] = [];
  private readonly server = http.createServer((req, res) => this.handle(req, res));
  /** WebSocket side: off unless a test turns it on; then `/ws` speaks a scripted part of the JSON protocol. */
  ws: { enabled: boolean; reply: boolean; answerPings: boolean; tokenResult: Record<string, unknown> } = {
    enabled: false,
    reply: true,
    answerPings: true,
    tokenResult: {},
  };
  /** Every frame the WebSocket clients sent, parsed. */
  readonly wsFrames: Record<string, unknown>[] = [];
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly sockets2 = new Set<WebSocket>();

  private constructor() {
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    this.server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
      const url = new URL(req.url ?? '/', 'http://x');
      this.requests.push({ path: url.pathname, query: url.searchParams, headers: req.headers });
      if (!this.ws.enabled || this.mode !== 'accept') {
        // 'refuse' and 'hang' alike: the handshake fails (a WebSocket cannot see an HTTP status anyway).
        socket.destroy();
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.onSocket(ws));
    });
  }

  private onSocket(ws: WebSocket): void {
    this.sockets2.add(ws);
    ws.on('close', () => this.sockets2.delete(ws));
    ws.on('message', (raw) => {
      const f = JSON.parse(String(raw)) as Record<string, unknown>;
      this.wsFrames.push(f);
      if (f['op'] === 'ping' && !this.ws.answerPings) return;
      if (f['op'] !== 'ping' && !this.ws.reply) return;
      const op = f['op'];
      const result = op === 'subscribe' ? { channel: f['channel'] ?? f['key'] } : op === 'connect' || op === 'refresh' ? this.ws.tokenResult : {};
      ws.send(JSON.stringify({ type: 'reply', id: f['id'], result }));
    });
  }

  /** Send a frame to every WebSocket client. */
  wsSend(frame: Record<string, unknown>): void {
    for (const ws of this.sockets2) ws.send(JSON.stringify(frame));
  }

  /** Close every WebSocket with a code and reason, as Herald does. */
  wsClose(code: number, reason: string): void {
    for (const ws of this.sockets2) ws.close(code, reason);
  }

  get openSockets(): number {
    return this.sockets2.size;
  }

  static async start(): Promise<ScriptedServer> {
    const s = new ScriptedServer();
    await new Promise<void>((r) => s.server.listen(0, '127.0.0.1', r));
    return s;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  get openStreams(): number {
    return this.streams.size;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    this.requests.push({ path: url.pathname, query: url.searchParams, headers: req.headers });
    for (const w of this.waiters.splice(0)) w();
    const how = url.pathname === '/readyz' && this.readyz !== undefined ? this.readyz : this.mode;
    if (how === 'hang') return;
    if (how === 'drop') {
      req.socket.destroy();
      return;
    }
    if (typeof how === 'number') {
      res.writeHead(how, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ status: how === 200 ? 'ready' : 'not ready' }));
      return;
    }
    if (how === 'broker_down') {
      if (url.pathname === '/sse') {
        res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
        res.end('retry: 1000\n\nevent: disconnect\ndata: ["disconnect","broker_unavailable",3016,true]\n\n');
      } else {
        res.writeHead(503, { 'Content-Type': 'application/json', 'Retry-After': '1' });
        res.end('{"error":{"code":"broker_unavailable","message":"scripted"}}');
      }
      return;
    }
    if (this.mode === 'accept' && url.pathname === '/poll') {
      this.polls.push(res);
      res.once('close', () => {
        const i = this.polls.indexOf(res);
        if (i >= 0) this.polls.splice(i, 1);
      });
      return;
    }
    if (this.mode === 'refuse' || url.pathname !== '/sse') {
      res.writeHead(this.mode === 'refuse' ? this.refuseStatus : 404, { 'Content-Type': 'application/json' });
      res.end('{"error":{"code":"unavailable","message":"scripted"}}');
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
    res.write('retry: 2000\n\n');
    this.streams.add(res);
    res.once('close', () => this.streams.delete(res));
  }

  get waitingPolls(): number {
    return this.polls.length;
  }

  /** Answer the oldest waiting long-poll with a batch, as Herald's /poll does. */
  answerPoll(messages: unknown[], cursor: string | undefined): void {
    const res = this.polls.shift();
    if (!res) throw new Error('no poll is waiting');
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(cursor === undefined ? { messages } : { messages, cursor }));
  }

  /** Wait until `n` requests have arrived in all. */
  async waitRequests(n: number, timeoutMs = 5000): Promise<SeenRequest> {
    const deadline = Date.now() + timeoutMs;
    while (this.requests.length < n) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for request #${n}; got ${this.requests.length}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
    return this.requests[n - 1] as SeenRequest;
  }

  /**
   * One SSE message event on every open stream, in Herald's format. `eventId` is the `id:` line: the message id,
   * or with several channels the connection's whole cursor.
   */
  message(channel: string, data: string, id?: string, eventId = id): void {
    const body = JSON.stringify(id === undefined ? ['message', channel, data] : ['message', channel, data, id]);
    this.raw(`${eventId === undefined ? '' : `id: ${eventId}\n`}data: ${body}\n\n`);
  }

  /** Herald's last event, then the end of the stream. */
  disconnect(reason: string, code: number, reconnect: boolean): void {
    this.raw(`event: disconnect\ndata: ${JSON.stringify(['disconnect', reason, code, reconnect])}\n\n`);
    for (const s of this.streams) s.end();
  }

  reload(channel: string, why: string, id: string): void {
    this.raw(`event: reload\ndata: ${JSON.stringify(['reload', channel, why, id])}\n\n`);
  }

  raw(text: string): void {
    for (const s of this.streams) s.write(text);
  }

  /** Cut every connection without a word, as a crash or a network loss would. */
  drop(): void {
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    this.drop();
    this.wss.close();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** Resolve when `check` holds, polling real time (network events are real even when the SDK's clock is fake). */
export async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Every event a client emits, by type, in order. */
export type EventLog = { [K in keyof ClientEvents]: ClientEvents[K][] };

/** Record every event of `client` (the SDK tests assert on what was emitted and when). */
export function recordEvents(client: HeraldClient): EventLog {
  const log: EventLog = { message: [], state: [], connecting: [], connected: [], disconnected: [], missed: [], error: [], join: [], leave: [], unsubscribed: [] };
  for (const type of Object.keys(log) as (keyof ClientEvents)[]) {
    client.on(type, (e) => (log[type] as unknown[]).push(e));
  }
  return log;
}
