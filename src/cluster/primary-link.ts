/**
 * A worker's end of the inter-worker path: one Unix-socket connection to the primary, carrying requests (answered
 * in order), the publications of the channels this worker subscribed, and the machine's status. Frames due in one
 * turn of the event loop go out as one write.
 */
import { connect, type Socket } from 'node:net';
import { HeraldError, ERROR_TABLE, type ErrorCode } from '../errors.js';
import { encodeFrame, FrameQueue, FrameReader, Op, type Frame } from './frames.js';
import type { ClusterStatus } from './status.js';

/** Requests this worker may have waiting on the primary (each is a client's publish, subscribe or read). */
const MAX_PENDING = 100_000;
const MAX_LINK_BYTES = 64 * 1024 * 1024;

export interface LinkEvents {
  onPublication(channel: string, data: string, id: string | undefined, ts: number): void;
  /** The primary asks for this worker's metrics text. */
  metrics(): string;
  /** The link is gone (the primary died or cut this worker off): the worker cannot serve as part of the machine. */
  onClose(): void;
}

export class PrimaryLink {
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private nextRid = 1;
  private open = false;
  private cluster: ClusterStatus | undefined;
  private socket: Socket | undefined;
  private queue: FrameQueue | undefined;
  events: LinkEvents | undefined;
  /** The primary tells of a dead worker's presence members (src/cluster/worker-presence.ts listens). */
  onPresenceGone: ((events: unknown, report: boolean) => void) | undefined;
  /** The machine's channel occupancy changed, and this worker is the one to tell (its webhooks). */
  onOccupancy: ((channel: string, occupied: boolean) => void) | undefined;

  constructor(
    private readonly socketPath: string,
    readonly workerId: number,
  ) {}

  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = connect(this.socketPath);
      this.socket = socket;
      socket.setNoDelay(true);
      this.queue = new FrameQueue(socket, MAX_LINK_BYTES, () => undefined);
      const reader = new FrameReader((frame) => this.onFrame(frame));
      socket.once('connect', () => {
        this.open = true;
        this.queue?.send(encodeFrame([Op.HELLO, this.workerId]));
        resolve();
      });
      socket.on('data', (chunk: Buffer) => {
        try {
          reader.push(chunk);
        } catch {
          socket.destroy();
        }
      });
      socket.on('error', (err) => {
        if (!this.open) reject(err);
      });
      socket.on('close', () => {
        const was = this.open;
        this.open = false;
        const gone = new HeraldError('unavailable', 'the link to the primary is gone');
        for (const p of this.pending.values()) p.reject(gone);
        this.pending.clear();
        if (was) this.events?.onClose();
      });
    });
  }

  get isOpen(): boolean {
    return this.open;
  }

  /** The machine as the primary last described it. */
  status(): ClusterStatus | undefined {
    return this.cluster;
  }

  request(op: number, ...fields: unknown[]): Promise<unknown> {
    if (!this.open) return Promise.reject(new HeraldError('unavailable', 'the link to the primary is gone'));
    if (this.pending.size >= MAX_PENDING) return Promise.reject(new HeraldError('unavailable', 'too many requests waiting on the primary'));
    const rid = this.nextRid++;
    return new Promise((resolve, reject) => {
      this.pending.set(rid, { resolve, reject });
      this.queue?.send(encodeFrame([op, rid, ...fields]));
    });
  }

  /** Push a frame that needs no answer. */
  push(op: number, ...fields: unknown[]): void {
    if (this.open) this.queue?.send(encodeFrame([op, ...fields]));
  }

  close(): void {
    this.socket?.destroy();
  }

  private onFrame(frame: Frame): void {
    const op = frame[0];
    if (op === Op.PUB) {
      const [, channel, data, id, ts] = frame;
      if (typeof channel !== 'string' || typeof data !== 'string') return;
      this.events?.onPublication(channel, data, typeof id === 'string' ? id : undefined, typeof ts === 'number' ? ts : Date.now());
      return;
    }
    if (op === Op.OCCUPANCY) {
      if (typeof frame[1] === 'string') this.onOccupancy?.(frame[1], frame[2] === true);
      return;
    }
    if (op === Op.PRESENCE_GONE) {
      this.onPresenceGone?.(frame[1], frame[2] === true);
      return;
    }
    if (op === Op.CLUSTER) {
      this.cluster = frame[1] as ClusterStatus;
      return;
    }
    const rid = frame[1];
    if (typeof rid !== 'number') return;
    if (op === Op.METRICS) {
      this.push(Op.OK, rid, this.events?.metrics() ?? '');
      return;
    }
    const waiting = this.pending.get(rid);
    if (!waiting) return;
    this.pending.delete(rid);
    if (op === Op.OK) waiting.resolve(frame[2]);
    else {
      const code = typeof frame[2] === 'string' && frame[2] in ERROR_TABLE ? (frame[2] as ErrorCode) : 'internal';
      waiting.reject(new HeraldError(code, typeof frame[3] === 'string' ? frame[3] : undefined));
    }
  }
}
