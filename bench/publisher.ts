/**
 * The publisher: timestamped messages at a fixed rate through POST /api/publish, over a few keep-alive connections
 * with pipelined requests (raw sockets: node's HTTP client would cost more CPU than the server's parser).
 *
 * Message k goes to channel k % C and carries the time it was *scheduled* for, not the time it left: when the
 * server (or this process) falls behind, the backlog shows as latency instead of being hidden (coordinated
 * omission). Channel c always uses connection c % P, so one channel's messages stay in order on the wire.
 */
import net from 'node:net';
import { nowUs, sleep } from './clock.js';
import { channelName, messageData } from './protocol.js';

export interface PublisherSpec {
  host: string;
  port: number;
  /** With several nodes: publishing connection i goes to ports[i % ports.length] (channel c stays on one connection). */
  ports?: number[];
  apiKey?: string;
  connections: number;
  /** Requests in flight per connection. */
  pipeline: number;
  channels: number;
  channelPrefix: string;
  /** Publish the bare data with `POST <rawPath>?channel=C` (Nchan's publisher), any 2xx being success. */
  rawPath?: string | undefined;
}

export interface PublishResult {
  rate: number;
  durationMs: number;
  /** Messages the schedule asked for. */
  scheduled: number;
  sent: number;
  ok: number;
  failed: number;
  /** Scheduled but never sent because every pipeline was full (the publisher or the server could not keep up). */
  unsent: number;
  okPerChannel: number[];
  errors: Record<string, number>;
  startUs: number;
  /** Time the last answer arrived. */
  endUs: number;
}

const TICK_MS = 2;
/** How long to wait for the answers still in flight once the schedule is over. */
const ANSWER_WAIT_MS = 10_000;

class Conn {
  socket: net.Socket | undefined;
  rest = '';
  /** Channel of each request in flight, oldest first (answers come back in order). */
  readonly inFlight: number[] = [];
  head = 0;
  get pending(): number {
    return this.inFlight.length - this.head;
  }
}

export class Publisher {
  private readonly conns: Conn[];
  private result: PublishResult | undefined;
  private readonly headers: string;

  constructor(private readonly spec: PublisherSpec) {
    this.conns = Array.from({ length: Math.max(1, spec.connections) }, () => new Conn());
    this.headers =
      `POST /api/publish HTTP/1.1\r\nHost: ${spec.host}:${spec.port}\r\nContent-Type: application/json\r\n` +
      (spec.apiKey ? `Authorization: Bearer ${spec.apiKey}\r\n` : '');
  }

  private request(body: string): string {
    return `${this.headers}Content-Length: ${body.length}\r\n\r\n${body}`;
  }

  /** Publish at `rate` messages/s for `durationMs`, then wait (bounded) for the answers. */
  async run(step: number, rate: number, durationMs: number, signal?: AbortSignal): Promise<PublishResult> {
    const C = this.spec.channels;
    const scheduled = Math.floor((rate * durationMs) / 1000);
    const r: PublishResult = {
      rate, durationMs, scheduled, sent: 0, ok: 0, failed: 0, unsent: 0,
      okPerChannel: new Array<number>(C).fill(0), errors: {}, startUs: nowUs(), endUs: 0,
    };
    this.result = r;
    const intervalUs = 1e6 / rate;
    const names = Array.from({ length: C }, (_, c) => channelName(this.spec.channelPrefix, c));
    const batches: string[][] = this.conns.map(() => []);
    let k = 0;
    while (k < scheduled && !signal?.aborted) {
      const due = Math.min(scheduled, Math.floor((nowUs() - r.startUs) / intervalUs) + 1);
      while (k < due) {
        const c = k % C;
        const ci = c % this.conns.length;
        const conn = this.conns[ci]!;
        if (conn.pending >= this.spec.pipeline) break;
        const data = messageData(step, Math.floor(k / C), Math.round(r.startUs + k * intervalUs));
        batches[ci]!.push(this.spec.rawPath === undefined
          ? this.request(`{"channel":"${names[c]}","data":"${data}"}`)
          : `POST ${this.spec.rawPath}?channel=${names[c]} HTTP/1.1\r\nHost: ${this.spec.host}:${this.spec.port}\r\n` +
            `Content-Type: text/plain\r\nContent-Length: ${data.length}\r\n\r\n${data}`);
        conn.inFlight.push(c);
        k++;
      }
      for (let i = 0; i < this.conns.length; i++) {
        const b = batches[i]!;
        if (b.length === 0) continue;
        r.sent += b.length;
        this.socketOf(i).write(b.join(''));
        b.length = 0;
      }
      await sleep(TICK_MS);
    }
    r.unsent = scheduled - k;
    const deadline = Date.now() + ANSWER_WAIT_MS;
    while (this.conns.some((c) => c.pending > 0) && Date.now() < deadline && !signal?.aborted) await sleep(5);
    for (const conn of this.conns) {
      if (conn.pending > 0) this.count(r.errors, 'no_answer', conn.pending);
      r.failed += conn.pending;
      // A fresh connection per step: answers still owed for this step must not be counted in the next one.
      conn.socket?.destroy();
      conn.socket = undefined;
      conn.inFlight.length = 0;
      conn.head = 0;
      conn.rest = '';
    }
    r.endUs = nowUs();
    this.result = undefined;
    return r;
  }

  close(): void {
    for (const c of this.conns) c.socket?.destroy();
  }

  /** The connection's socket, opened (again) if the server closed it; requests written before connect are queued. */
  private socketOf(i: number): net.Socket {
    const conn = this.conns[i]!;
    if (conn.socket && !conn.socket.destroyed) return conn.socket;
    const ports = this.spec.ports;
    const port = ports !== undefined && ports.length > 0 ? ports[i % ports.length]! : this.spec.port;
    const socket = net.connect({ host: this.spec.host, port });
    socket.setNoDelay(true);
    conn.socket = socket;
    conn.rest = '';
    socket.on('data', (d: Buffer) => this.onData(conn, d));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (this.result) this.count(this.result.errors, err.code ?? 'error');
    });
    socket.on('close', () => {
      if (conn.socket !== socket) return;
      conn.socket = undefined;
      // Whatever was in flight on a closed connection is lost.
      if (this.result) {
        this.result.failed += conn.pending;
        if (conn.pending > 0) this.count(this.result.errors, 'connection_closed', conn.pending);
      }
      conn.inFlight.length = 0;
      conn.head = 0;
    });
    return socket;
  }

  /** Split answers: status from the status line, body length from Content-Length. */
  private onData(conn: Conn, d: Buffer): void {
    const r = this.result;
    const text = conn.rest + d.toString('latin1');
    let at = 0;
    for (;;) {
      const end = text.indexOf('\r\n\r\n', at);
      if (end < 0) break;
      const head = text.slice(at, end);
      const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      const bodyEnd = end + 4 + (m ? Number(m[1]) : 0);
      if (bodyEnd > text.length) break;
      const status = head.slice(9, 12);
      const channel = conn.inFlight[conn.head++];
      if (r && channel !== undefined) {
        if (status === '200' || (this.spec.rawPath !== undefined && status[0] === '2')) {
          r.ok++;
          r.okPerChannel[channel] = (r.okPerChannel[channel] ?? 0) + 1;
        } else {
          r.failed++;
          this.count(r.errors, `http_${status}`);
        }
      }
      at = bodyEnd;
    }
    conn.rest = text.slice(at);
    if (conn.head > 1024 && conn.head * 2 > conn.inFlight.length) {
      conn.inFlight.splice(0, conn.head);
      conn.head = 0;
    }
  }

  private count(errors: Record<string, number>, code: string, by = 1): void {
    errors[code] = (errors[code] ?? 0) + by;
  }
}
