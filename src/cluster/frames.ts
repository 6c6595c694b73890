/**
 * The inter-worker framing (docs/architecture.md "Workers"): a frame is a 4-byte big-endian length and a JSON array,
 * `[op, ...fields]`. Frames due to one peer in the same turn of the event loop are written together (FrameQueue),
 * and a publication fanned out to several workers is encoded once: the same Buffer is queued on each link.
 * The peers are this machine's own Herald processes, but a frame is still checked before it is used: bounded in
 * size, an array, with an op number (a worker that sends garbage is cut off, not trusted).
 */
import type { Socket } from 'node:net';

/** Largest frame either side accepts: a publish carries at most maxBodyBytes of data, a history read at most its limit. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;

/** Operation numbers. Requests carry an id answered by OK or ERR; pushes carry none. */
export const Op = {
  /** primary → worker: [PUB, channel, data, id | null, ts] */
  PUB: 0,
  /** worker → primary: [SUB, rid, channels] */
  SUB: 1,
  /** worker → primary: [UNSUB, rid, channels] */
  UNSUB: 2,
  /** worker → primary: [PUBLISH, rid, channel, data, history | null, idempotency | null] */
  PUBLISH: 3,
  /** worker → primary: [HISTORY, rid, channel, query] */
  HISTORY: 4,
  /** worker → primary: [REMOVE_HISTORY, rid, channel] */
  REMOVE_HISTORY: 5,
  /** worker → primary: [CLUSTER_METRICS, rid]: every process's metrics, summed */
  CLUSTER_METRICS: 6,
  /** primary → worker: [METRICS, rid]: this worker's metrics text, answered by OK */
  METRICS: 7,
  /** worker → primary: [HELLO, workerId] (first frame) */
  HELLO: 8,
  /** either way: [OK, rid, result] */
  OK: 9,
  /** either way: [ERR, rid, code, message] */
  ERR: 10,
  /** worker → primary: [STATUS, ready, draining, connections] (every second, and when it changes) */
  STATUS: 11,
  /** primary → worker: [CLUSTER, workers]: what every worker last reported (see WorkerStatus) */
  CLUSTER: 12,
  /** worker → primary: [PRESENCE_ADD, channel, member]: a member of this worker joined (src/cluster/worker-presence.ts) */
  PRESENCE_ADD: 13,
  /** worker → primary: [PRESENCE_REMOVE, channel, client]: a member of this worker left */
  PRESENCE_REMOVE: 14,
  /** worker → primary: [PRESENCE_READ, rid, channel, withMembers, limit]: the other workers' members, the machine's counts */
  PRESENCE_READ: 15,
  /** primary → worker: [PRESENCE_GONE, [[channel, member, userEdge], ...], report?]: a dead worker's members, for leave events; `report` (one worker): it sends their webhooks */
  PRESENCE_GONE: 16,
  /**
   * primary → worker: [OCCUPANCY, channel, occupied]: the channel got its first subscriber on the machine (true) or
   * lost its last (false); sent to one worker (the one whose SUB or UNSUB made it so), which sends the webhooks
   */
  OCCUPANCY: 17,
} as const;

export type Frame = readonly unknown[];

/** Encode one frame (once: the Buffer may be queued on several links). */
export function encodeFrame(frame: Frame): Buffer {
  // One allocation: the JSON text is written straight after its length, not encoded apart and copied (the
  // primary encodes every publication and every answer, so this runs once per frame on the hot path).
  const json = JSON.stringify(frame);
  const size = Buffer.byteLength(json, 'utf8');
  const out = Buffer.allocUnsafe(4 + size);
  out.writeUInt32BE(size, 0);
  out.write(json, 4, 'utf8');
  return out;
}

/** Reads frames off a byte stream; throws on a frame over the bound or not a JSON array with a numeric op. */
export class FrameReader {
  private pending: Buffer | undefined;

  constructor(private readonly onFrame: (frame: Frame) => void) {}

  push(chunk: Buffer): void {
    const buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
    let at = 0;
    while (buf.length - at >= 4) {
      const size = buf.readUInt32BE(at);
      if (size > MAX_FRAME_BYTES) throw new Error(`frame of ${size} bytes over the ${MAX_FRAME_BYTES} bound`);
      if (buf.length - at - 4 < size) break;
      const text = buf.toString('utf8', at + 4, at + 4 + size);
      at += 4 + size;
      const frame: unknown = JSON.parse(text);
      if (!Array.isArray(frame) || typeof frame[0] !== 'number') throw new Error('frame is not [op, ...]');
      this.onFrame(frame);
    }
    if (at < buf.length) this.pending = at === 0 ? buf : buf.subarray(at);
  }
}

/**
 * Frames due to one socket, written once per turn of the event loop as one write (the batch). Bounded: a peer
 * whose socket holds more than `maxBytes` unsent is too slow to keep up, and `onOverflow` decides (the primary
 * cuts that worker off; it restarts and its clients resume elsewhere).
 */
export class FrameQueue {
  private queued: Buffer[] = [];
  private scheduled = false;

  constructor(
    private readonly socket: Socket,
    private readonly maxBytes: number,
    private readonly onOverflow: () => void,
  ) {}

  send(frame: Buffer): void {
    if (this.socket.destroyed) return;
    this.queued.push(frame);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    const batch = this.queued;
    this.queued = [];
    if (this.socket.destroyed || batch.length === 0) return;
    this.socket.write(batch.length === 1 ? (batch[0] as Buffer) : Buffer.concat(batch));
    if (this.socket.writableLength > this.maxBytes) this.onOverflow();
  };
}
