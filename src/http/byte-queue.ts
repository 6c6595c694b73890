/**
 * Bytes read from a socket and not yet consumed, in one growable buffer.
 *
 * Why not `Buffer.concat` on every read: a request dribbled in small reads would then be copied whole on each one
 * (quadratic in its size). Here a read is copied once, into room reserved ahead (doubling), and a parser can search
 * only the bytes it has not searched yet. A read that arrives while nothing is queued is kept as it is, not copied.
 */
const EMPTY = Buffer.alloc(0);
const MIN_CAPACITY = 16 * 1024;

export class ByteQueue {
  private data: Buffer = EMPTY;
  private start = 0;
  private end = 0;
  /** `data` is our own buffer (true) or a socket's read chunk held as it is (false: never written into). */
  private owned = false;

  get length(): number {
    return this.end - this.start;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.length === 0) {
      this.data = chunk;
      this.start = 0;
      this.end = chunk.length;
      this.owned = false;
      return;
    }
    const size = this.length + chunk.length;
    if (this.owned && this.data.length >= size) {
      // Enough room once the consumed bytes at the front are dropped.
      if (this.data.length - this.end < chunk.length) {
        this.data.copyWithin(0, this.start, this.end);
        this.end -= this.start;
        this.start = 0;
      }
    } else {
      const next = Buffer.allocUnsafe(Math.max(MIN_CAPACITY, size * 2));
      this.data.copy(next, 0, this.start, this.end);
      this.data = next;
      this.end -= this.start;
      this.start = 0;
      this.owned = true;
    }
    chunk.copy(this.data, this.end);
    this.end += chunk.length;
  }

  /** The queued bytes, without copying. Valid until the next push or consume. */
  view(): Buffer {
    return this.data.subarray(this.start, this.end);
  }

  consume(n: number): void {
    this.start = Math.min(this.end, this.start + n);
    if (this.start === this.end) this.clear();
  }

  /** The queued bytes as a Buffer of their own (for handing a socket on), and an empty queue. */
  takeAll(): Buffer {
    const rest = Buffer.from(this.view());
    this.clear();
    return rest;
  }

  clear(): void {
    this.data = EMPTY;
    this.start = 0;
    this.end = 0;
    this.owned = false;
  }
}
