/**
 * Socket.IO subscribers for the side-by-side harness: real `socket.io-client` 4 connections (WebSocket transport,
 * no reconnection), each joining the room of its channel with `?channel=NAME` (bench/socketio-server.ts), counting
 * `message` events whose data is `<step>:<seq>:<sentUs>` as SubscriberPool counts Herald's and Nchan's frames.
 * The client library is far heavier per delivery than the raw-socket pool: its CPU is reported beside the server's.
 */
import { io, type Socket } from 'socket.io-client';
import { nowUs } from './clock.js';
import { Histogram } from './histogram.js';
import { channelName, type PoolProgress, type PoolSpec, type StepStats } from './protocol.js';

class IoSub {
  held = false;
  gone = false;
  step = -1;
  maxSeq = -1;
  /** Bit k set = (maxSeq - k) was seen in this step. */
  mask = 0;
  constructor(readonly channel: number, readonly socket: Socket) {}
}

export class SocketIoPool {
  private readonly subs: IoSub[] = [];
  private next = 0;
  private inFlight = 0;
  private held = 0;
  private failed = 0;
  private dropped = 0;
  private readonly errors: Record<string, number> = {};
  private step = -1;
  private received = 0;
  private duplicates = 0;
  private reordered = 0;
  private stale = 0;
  private disconnectFrames = 0;
  private lastReceiveUs = 0;
  private okPerChannel: number[] | undefined;
  private readonly latency = new Histogram();

  constructor(private readonly spec: PoolSpec) {}

  start(): void {
    const n = Math.min(this.spec.concurrency, this.spec.count);
    for (let k = 0; k < n; k++) this.openNext();
  }

  progress(): PoolProgress {
    return { held: this.held, failed: this.failed, dropped: this.dropped, errors: { ...this.errors } };
  }

  beginStep(step: number): void {
    this.step = step;
    this.received = 0;
    this.duplicates = 0;
    this.reordered = 0;
    this.stale = 0;
    this.disconnectFrames = 0;
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
      ...this.progress(), step: this.step, received: this.received, duplicates: this.duplicates, reordered: this.reordered,
      stale: this.stale, expected, lastReceiveUs: this.lastReceiveUs, disconnectFrames: this.disconnectFrames, reloads: 0,
      latency: this.latency.toSparse(),
    };
  }

  close(): void {
    this.next = this.spec.count;
    for (const s of this.subs) {
      s.gone = true;
      s.socket.disconnect();
    }
  }

  private openNext(): void {
    if (this.next >= this.spec.count) return;
    const index = this.spec.firstIndex + this.next++;
    const channel = index % this.spec.channels;
    const addrs = this.spec.localAddresses;
    const socket = io(`http://${this.spec.host}:${this.spec.port}`, {
      transports: ['websocket'], reconnection: false, forceNew: true, timeout: this.spec.connectTimeoutMs,
      query: { channel: channelName(this.spec.channelPrefix, channel) },
      ...(addrs.length > 0 ? { localAddress: addrs[index % addrs.length] } : {}),
    });
    const sub = new IoSub(channel, socket);
    this.subs.push(sub);
    this.inFlight++;
    socket.on('connect', () => {
      sub.held = true;
      this.held++;
      this.attemptDone();
    });
    socket.on('connect_error', (err: Error) => {
      const code = (err as { description?: { code?: string } }).description?.code ?? 'connect_error';
      this.errors[code] = (this.errors[code] ?? 0) + 1;
      if (sub.gone) return;
      sub.gone = true;
      this.failed++;
      this.attemptDone();
    });
    socket.on('disconnect', () => {
      if (sub.gone) return;
      sub.gone = true;
      this.disconnectFrames++;
      if (sub.held) {
        this.held--;
        this.dropped++;
      }
    });
    socket.on('message', (data: unknown) => {
      if (typeof data === 'string') this.record(sub, data, nowUs());
    });
  }

  private attemptDone(): void {
    this.inFlight--;
    this.openNext();
  }

  /** `<step>:<seq>:<sentUs>`: duplicates and reordering told from seq, latency from the shared clock. */
  private record(sub: IoSub, text: string, now: number): void {
    const [stepText, seqText, sentText] = text.split(':');
    const step = Number(stepText);
    const seq = Number(seqText);
    const sent = Number(sentText);
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
