/**
 * Frames due to one socket in the same turn of the event loop leave in one write.
 *
 * A profile of the hot channel puts ~80 % of the server's busy time in `writeBuffer`, the write system call (on
 * loopback it also runs the receiver's TCP stack). Nothing in JavaScript is worth as much as a system call saved.
 * So a held stream does not write each frame at once: the first frame of a turn is kept, the socket is put on one
 * process-wide list, and a single `setImmediate` writes every listed socket's frames after the turn's I/O callbacks
 * (one `write`, or a corked burst that node sends as one `writev`). When a burst of publications arrives together
 * (pipelined publish requests, a broker batch, a replay), a subscriber gets them in one system call instead of one
 * each; when it does not, the cost is one array push and one call per socket per turn.
 *
 * At most BATCH_MAX_BYTES wait here: a frame that would take a socket's batch past it is written at once with what
 * was waiting. The bytes waiting do not count as queued (a big frame must reach the kernel, which takes it from a
 * reading client, before `maxQueueBytes` judges the client slow); so a socket's queue is bounded by
 * `maxQueueBytes` + BATCH_MAX_BYTES.
 * Per connection this costs one field (the pending frame, or an array only when a second one comes); no timer. A
 * held stream's sink extends the class (no extra object); a WebSocket connection holds one.
 */
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';

/** Something that writes what it holds when the turn's batch is flushed. */
interface Batched {
  flushBatch(): void;
}

/** Bytes a socket's batch may hold before it is written at once. */
export const BATCH_MAX_BYTES = 16 * 1024;

let due: Batched[] = [];
let scheduled = false;

function flushDue(): void {
  scheduled = false;
  const list = due;
  due = [];
  for (let i = 0; i < list.length; i++) list[i]!.flushBatch();
}

/** Frames waiting for one socket's next write. */
export class BatchedWriter implements Batched {
  /** The frame of this turn, or the frames once a second one came. */
  private pending: Buffer | Buffer[] | undefined = undefined;

  constructor(protected readonly socket: Socket) {}

  /** Queue `bytes` for this turn's write. */
  batch(bytes: Buffer): void {
    const p = this.pending;
    if (bytes.length >= BATCH_MAX_BYTES || (p !== undefined && this.pendingBytes() + bytes.length > BATCH_MAX_BYTES)) {
      this.flushBatch();
      this.socket.write(bytes);
      return;
    }
    if (p === undefined) {
      this.pending = bytes;
      due.push(this);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flushDue);
      }
    } else if (Array.isArray(p)) p.push(bytes);
    else this.pending = [p, bytes];
  }

  /** Bytes handed to `write` and not yet to the socket. */
  pendingBytes(): number {
    const p = this.pending;
    if (p === undefined) return 0;
    if (!Array.isArray(p)) return p.length;
    let n = 0;
    for (const b of p) n += b.length;
    return n;
  }

  /** Write what is pending now (before last words, which must follow it). Called by the batch too. */
  flushBatch(): void {
    const p = this.pending;
    if (p === undefined) return;
    this.pending = undefined;
    const socket = this.socket;
    if (!this.canWrite()) return;
    if (!Array.isArray(p)) {
      socket.write(p);
      return;
    }
    // Corked chunks leave in one writev.
    socket.cork();
    for (const b of p) socket.write(b);
    socket.uncork();
  }

  /** False once nothing more may be written (a WebSocket also stops at its close frame). */
  protected canWrite(): boolean {
    return !this.socket.destroyed && this.socket.writable;
  }

  /** Forget what is pending (the socket is being destroyed). */
  drop(): void {
    this.pending = undefined;
  }
}

/** Pre-framed WebSocket frames batched per turn (/ws and Pusher's /app/{key}); nothing may follow the close frame, which `ws` writes itself. */
export class WsWrites extends BatchedWriter {
  constructor(socket: Socket, private readonly ws: WebSocket) {
    super(socket);
  }
  protected override canWrite(): boolean {
    return this.ws.readyState === this.ws.OPEN && super.canWrite();
  }
}
