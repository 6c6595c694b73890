/**
 * Lean streaming subscribers: raw TCP sockets, a hand-written GET, and a line scanner that parses only the data
 * field of message lines. The generator shares two cores with the server under test, so a delivery must cost it
 * far less than it costs the server.
 */
import net from 'node:net';
import { nowUs } from './clock.js';
import { Histogram } from './histogram.js';
import { channelName, type PoolProgress, type PoolSpec, type StepStats } from './protocol.js';

const MAX_HEAD_BYTES = 16 * 1024;
/** `["message","` */
const MESSAGE_PREFIX_LENGTH = 12;
const CH_LBRACKET = 91;
const CH_M = 109;
const CH_D = 100;
const CH_R = 114;
const CH_COLON = 58;
const CH_0 = 48;
/** A client pong must be masked: FIN + pong, mask bit + length 0, a zero masking key. */
const PONG = Buffer.from([0x8a, 0x80, 0, 0, 0, 0]);

/** A masked client text frame (a zero masking key leaves the payload as it is). */
function clientTextFrame(text: string): Buffer {
  const payload = Buffer.from(text, 'utf8');
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x81, 0x80 | n, 0, 0, 0, 0]) : Buffer.from([0x81, 0x80 | 126, n >> 8, n & 0xff, 0, 0, 0, 0]);
  return Buffer.concat([head, payload]);
}
const PUSHER_PONG = clientTextFrame('{"event":"pusher:pong","data":{}}');

/** The GET that opens a subscriber's stream (or WebSocket) on `channel`, for the pool and the churn connections. */
export function subscribeRequest(spec: PoolSpec): (channel: number, port: number) => string {
  const pusher = spec.transport === 'pusher';
  const path = spec.transport === 'sse' ? '/sse' : spec.transport === 'ws' ? '/ws' : pusher ? '/app/app-key' : '/sub';
  const accept = spec.transport === 'sse' ? 'text/event-stream' : 'application/x-ndjson';
  // A WebSocket upgrade with the channel in the URL: live once the 101 arrives, as a stream is at its 200.
  const extra =
    spec.transport === 'ws' || pusher
      ? 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
      : `Accept: ${accept}\r\n`;
  // Pusher: the channel is subscribed after the handshake (pusher:subscribe); held at subscription_succeeded.
  const query = (channel: number): string => (pusher ? 'protocol=7' : `channel=${channelName(spec.channelPrefix, channel)}`);
  return (channel, port) => `GET ${path}?${query(channel)} HTTP/1.1\r\nHost: ${spec.host}:${port}\r\n${extra}\r\n`;
}

/** One subscriber connection. Plain fields only: thousands of these live in one process. */
class Sub {
  rest = '';
  /** WebSocket only: bytes of an incomplete frame. */
  frameRest: Buffer | undefined = undefined;
  held = false;
  /** Pusher: past the handshake (every byte is a frame from here on), held once its subscription succeeded. */
  upgraded = false;
  gone = false;
  /** Per-step window of seen sequence numbers: bit k set = (maxSeq - k) was seen. */
  step = -1;
  maxSeq = -1;
  mask = 0;
  constructor(readonly index: number, readonly channel: number, readonly socket: net.Socket) {}
}

export class SubscriberPool {
  private readonly subs: Sub[] = [];
  private next = 0;
  private inFlight = 0;
  private held = 0;
  private failed = 0;
  private dropped = 0;
  private readonly errors: Record<string, number> = {};
  private readonly request: (channel: number, port: number) => string;
  /** Offset of `["message"` in a line: 0 for NDJSON, 6 for SSE's `data: `. */
  private readonly lineOffset: number;

  private step = -1;
  private received = 0;
  private duplicates = 0;
  private reordered = 0;
  private stale = 0;
  private disconnectFrames = 0;
  /** `reload` notices: the server says messages were missed (e.g. its broker link was lost). */
  private reloads = 0;
  private lastReceiveUs = 0;
  private okPerChannel: number[] | undefined;
  private readonly latency = new Histogram();

  constructor(private readonly spec: PoolSpec, private readonly onSettled: () => void = () => undefined) {
    this.request = subscribeRequest(spec);
    this.lineOffset = spec.transport === 'sse' ? 6 : 0;
  }

  /** Open every connection, `concurrency` attempts at a time. Progress is read with progress(). */
  start(): void {
    const n = Math.min(this.spec.concurrency, this.spec.count);
    for (let k = 0; k < n; k++) this.openNext();
  }

  /** True once every connection is held or has failed. */
  settled(): boolean {
    return this.held + this.failed + this.dropped >= this.spec.count && this.inFlight === 0;
  }

  progress(): PoolProgress {
    return { held: this.held, failed: this.failed, dropped: this.dropped, errors: { ...this.errors } };
  }

  /** Count messages of `step` from now on; earlier counters are reset. */
  beginStep(step: number): void {
    this.step = step;
    this.received = 0;
    this.duplicates = 0;
    this.reordered = 0;
    this.stale = 0;
    this.disconnectFrames = 0;
    this.reloads = 0;
    this.lastReceiveUs = 0;
    this.okPerChannel = undefined;
    this.latency.reset();
  }

  expect(step: number, okPerChannel: number[]): void {
    if (step === this.step) this.okPerChannel = okPerChannel;
  }

  stats(): StepStats {
    let expected = 0;
    const ok = this.okPerChannel;
    if (ok) for (const s of this.subs) if (s.held && !s.gone) expected += ok[s.channel] ?? 0;
    return {
      ...this.progress(),
      step: this.step,
      received: this.received,
      duplicates: this.duplicates,
      reordered: this.reordered,
      stale: this.stale,
      expected,
      lastReceiveUs: this.lastReceiveUs,
      disconnectFrames: this.disconnectFrames,
      reloads: this.reloads,
      latency: this.latency.toSparse(),
    };
  }

  close(): void {
    this.next = this.spec.count;
    for (const s of this.subs) s.socket.destroy();
  }

  private openNext(): void {
    if (this.next >= this.spec.count) return;
    const index = this.spec.firstIndex + this.next++;
    const channel = index % this.spec.channels;
    const addrs = this.spec.localAddresses;
    const localAddress = addrs.length > 0 ? addrs[index % addrs.length] : undefined;
    // Several nodes: round-robin by connection index, so every node holds an even share of every channel's
    // subscribers (when the node count does not divide the channel count) and a message crosses the broker.
    const ports = this.spec.ports;
    const port = ports !== undefined && ports.length > 0 ? ports[index % ports.length]! : this.spec.port;
    const socket = net.connect({ host: this.spec.host, port, localAddress });
    const sub = new Sub(index, channel, socket);
    this.subs.push(sub);
    this.inFlight++;
    socket.setNoDelay(true);
    socket.setTimeout(this.spec.connectTimeoutMs);
    socket.on('connect', () => socket.write(this.request(channel, port)));
    socket.on('data', (d: Buffer) => this.onData(sub, d));
    socket.on('timeout', () => this.fail(sub, 'timeout'));
    socket.on('error', (err: NodeJS.ErrnoException) => this.fail(sub, err.code ?? 'error'));
    socket.on('close', () => this.onClose(sub));
  }

  private fail(sub: Sub, code: string): void {
    this.errors[code] = (this.errors[code] ?? 0) + 1;
    sub.socket.destroy();
  }

  private onClose(sub: Sub): void {
    if (sub.gone) return;
    sub.gone = true;
    if (sub.held) {
      this.held--;
      this.dropped++;
    } else {
      this.failed++;
      this.attemptDone();
    }
  }

  private attemptDone(): void {
    this.inFlight--;
    this.openNext();
    if (this.settled()) this.onSettled();
  }

  private hold(sub: Sub): void {
    sub.held = true;
    this.held++;
    sub.socket.setTimeout(0);
    this.attemptDone();
  }

  private onData(sub: Sub, d: Buffer): void {
    const now = nowUs();
    if (sub.upgraded) {
      this.onFrames(sub, d, now);
      return;
    }
    let text = sub.rest.length > 0 ? sub.rest + d.toString('latin1') : d.toString('latin1');
    if (!sub.held) {
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) {
        if (text.length > MAX_HEAD_BYTES) this.fail(sub, 'head_too_large');
        else sub.rest = text;
        return;
      }
      const status = text.slice(9, 12);
      const upgraded = this.spec.transport === 'ws' || this.spec.transport === 'pusher';
      if (status !== (upgraded ? '101' : '200')) {
        this.fail(sub, `http_${status}`);
        return;
      }
      text = text.slice(end + 4);
      if (this.spec.transport === 'pusher') {
        sub.rest = '';
        sub.upgraded = true;
        sub.socket.write(clientTextFrame(`{"event":"pusher:subscribe","data":{"channel":"${channelName(this.spec.channelPrefix, sub.channel)}"}}`));
        if (text.length > 0) this.onFrames(sub, Buffer.from(text, 'latin1'), now);
        return;
      }
      this.hold(sub);
      if (this.spec.transport === 'ws') {
        sub.rest = '';
        if (text.length > 0) this.onFrames(sub, Buffer.from(text, 'latin1'), now);
        return;
      }
    }
    if (this.spec.transport === 'ws' || this.spec.transport === 'pusher') {
      this.onFrames(sub, d, now);
      return;
    }
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      if (nl < 0) break;
      const at = start + this.lineOffset;
      if (this.spec.nchan) {
        // A bare `<step>:<seq>:<sentUs>` line (chunk-size lines and SSE fields hold no ':' at this offset).
        const c = text.charCodeAt(at);
        if (c >= CH_0 && c <= CH_0 + 9 && text.indexOf(':', at) < nl && (this.lineOffset === 0 || text.startsWith('data: ', start))) {
          this.record(sub, text, at, now);
        }
      } else if (nl - at > MESSAGE_PREFIX_LENGTH && text.charCodeAt(at) === CH_LBRACKET) {
        const kind = text.charCodeAt(at + 2);
        if (kind === CH_M) this.onMessage(sub, text, at + MESSAGE_PREFIX_LENGTH, now);
        else if (kind === CH_D) this.disconnectFrames++;
        else if (kind === CH_R) this.reloads++;
      }
      start = nl + 1;
    }
    sub.rest = start < text.length ? text.slice(start) : '';
  }

  /**
   * WebSocket frames from the server (unmasked). Text frames `{"type":"message",...,"data":"<step>:<seq>:<sentUs>"}`
   * are counted; pings are answered (a masked pong with a zero mask), or the server would free this peer as dead.
   */
  private onFrames(sub: Sub, d: Buffer, now: number): void {
    const b = sub.frameRest ? Buffer.concat([sub.frameRest, d]) : d;
    let off = 0;
    while (b.length - off >= 2) {
      const opcode = b[off]! & 0x0f;
      let len = b[off + 1]! & 0x7f;
      let head = 2;
      if (len === 126) {
        if (b.length - off < 4) break;
        len = b.readUInt16BE(off + 2);
        head = 4;
      } else if (len === 127) {
        if (b.length - off < 10) break;
        len = b.readUInt32BE(off + 6);
        head = 10;
      }
      if (b.length - off < head + len) break;
      const start = off + head;
      if (opcode === 1) {
        const text = b.toString('latin1', start, start + len);
        const c = text.charCodeAt(0);
        if (this.spec.nchan) {
          if (c >= CH_0 && c <= CH_0 + 9 && text.includes(':')) this.record(sub, text, 0, now);
        } else if (text.startsWith('{"type":"message"')) {
          const at = text.indexOf('"data":"');
          if (at > 0) this.record(sub, text, at + 8, now);
        } else if (text.startsWith('{"type":"reload"')) {
          this.reloads++;
        } else if (text.startsWith('{"event":"message"')) {
          const at = text.indexOf('"data":"');
          if (at > 0) this.record(sub, text, at + 8, now);
        } else if (text.startsWith('{"event":"pusher_internal:subscription_succeeded"')) {
          if (!sub.held) this.hold(sub);
        } else if (text.startsWith('{"event":"pusher:ping"')) {
          sub.socket.write(PUSHER_PONG);
        }
      } else if (opcode === 9) {
        sub.socket.write(PONG);
      } else if (opcode === 8) {
        this.disconnectFrames++;
      }
      off = start + len;
    }
    sub.frameRest = off < b.length ? Buffer.from(b.subarray(off)) : undefined;
  }

  /** `from` points just past `["message","`: skip the channel, read `<step>:<seq>:<sentUs>`. */
  private onMessage(sub: Sub, text: string, from: number, now: number): void {
    const i = text.indexOf('","', from);
    if (i < 0) return;
    this.record(sub, text, i + 3, now);
  }

  /** `i` points at `<step>:<seq>:<sentUs>`. */
  private record(sub: Sub, text: string, i: number, now: number): void {
    let step = 0;
    let c: number;
    while ((c = text.charCodeAt(i++)) !== CH_COLON) step = step * 10 + (c - CH_0);
    let seq = 0;
    while ((c = text.charCodeAt(i++)) !== CH_COLON) seq = seq * 10 + (c - CH_0);
    let sent = 0;
    while ((c = text.charCodeAt(i++)) >= CH_0 && c <= CH_0 + 9) sent = sent * 10 + (c - CH_0);
    if (step !== this.step) {
      this.stale++;
      return;
    }
    if (sub.step !== step) {
      sub.step = step;
      sub.maxSeq = -1;
      sub.mask = 0;
    }
    const d = seq - sub.maxSeq;
    if (d > 0) {
      sub.mask = d >= 32 ? 1 : ((sub.mask << d) | 1) >>> 0;
      sub.maxSeq = seq;
    } else {
      const back = -d;
      if (back < 32) {
        const bit = (1 << back) >>> 0;
        if ((sub.mask & bit) !== 0) {
          this.duplicates++;
          return;
        }
        sub.mask = (sub.mask | bit) >>> 0;
      }
      this.reordered++;
    }
    this.received++;
    this.lastReceiveUs = now;
    this.latency.record(now - sent);
  }
}
