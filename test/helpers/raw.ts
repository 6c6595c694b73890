/**
 * A raw TCP client for tests that must control the exact bytes on the wire: partial headers, pipelined requests,
 * HTTP/1.0, a client that never reads. node's HTTP client would normalise all of these away.
 */
import net from 'node:net';

export class RawClient {
  readonly socket: net.Socket;
  /** Everything received so far, as latin1 (bytes preserved one to one). */
  received = '';
  closed = false;
  readonly openedAt = Date.now();
  closedAt: number | undefined;
  private readonly waiters: (() => void)[] = [];
  private readonly connected: Promise<void>;

  /** `read: false` makes a client that never reads; `localAddress` picks the source address (e.g. 127.0.0.2). */
  constructor(url: string, options: { read?: boolean; localAddress?: string } = {}) {
    const u = new URL(url);
    this.socket = net.connect({ port: Number(u.port), host: u.hostname, localAddress: options.localAddress });
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('error', reject);
    });
    this.socket.on('error', () => undefined);
    if (options.read === false) {
      // A client that never reads: nothing is pulled off the socket, so the kernel buffers fill and stay full.
      this.socket.pause();
    } else {
      this.socket.on('data', (d: Buffer) => {
        this.received += d.toString('latin1');
        this.wake();
      });
    }
    this.socket.once('close', () => {
      this.closed = true;
      this.closedAt = Date.now();
      this.wake();
    });
  }

  ready(): Promise<void> {
    return this.connected;
  }

  async write(bytes: string | Buffer): Promise<void> {
    await this.connected;
    await new Promise<void>((resolve, reject) => this.socket.write(bytes, (err) => (err ? reject(err) : resolve())));
  }

  /** Wait until `check` holds for what was received (or the socket closed, when `orClose`). */
  waitFor(check: (received: string) => boolean, timeoutMs = 5000, what = 'data'): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.received.slice(0, 2000))}`)),
        timeoutMs,
      );
      const test = (): void => {
        if (check(this.received)) {
          clearTimeout(timer);
          resolve(this.received);
        } else if (this.closed) {
          clearTimeout(timer);
          reject(new Error(`closed while waiting for ${what}; got ${JSON.stringify(this.received.slice(0, 2000))}`));
        } else this.waiters.push(test);
      };
      test();
    });
  }

  /** Resolves with the time the socket took to close since it was opened; rejects after `timeoutMs`. */
  waitClose(timeoutMs = 5000): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`socket still open after ${timeoutMs} ms`)), timeoutMs);
      const test = (): void => {
        if (this.closed) {
          clearTimeout(timer);
          resolve((this.closedAt ?? Date.now()) - this.openedAt);
        } else this.waiters.push(test);
      };
      test();
    });
  }

  destroy(): void {
    this.socket.destroy();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

/** Send `bytes` on a fresh connection and return everything received until the server closes it. */
export async function rawExchange(url: string, bytes: string | Buffer, timeoutMs = 5000): Promise<string> {
  const c = new RawClient(url);
  try {
    await c.write(bytes);
    await c.waitClose(timeoutMs);
    return c.received;
  } finally {
    c.destroy();
  }
}

export interface ParsedResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Parse the first HTTP response in `raw` (headers lower-cased; the body is whatever follows the head, unparsed). */
export function parseHead(raw: string): ParsedResponse {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no complete response head in ${JSON.stringify(raw.slice(0, 500))}`);
  const [statusLine = '', ...lines] = raw.slice(0, end).split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  if (!m?.[1]) throw new Error(`bad status line ${JSON.stringify(statusLine)}`);
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: Number(m[1]), headers, body: raw.slice(end + 4) };
}

/** Decode a complete or partial chunked body into its payload (stops at the last complete chunk). */
export function dechunk(body: string): string {
  let out = '';
  let i = 0;
  for (;;) {
    const eol = body.indexOf('\r\n', i);
    if (eol < 0) return out;
    const size = parseInt(body.slice(i, eol), 16);
    if (Number.isNaN(size)) throw new Error(`bad chunk size at ${i}: ${JSON.stringify(body.slice(i, i + 20))}`);
    if (size === 0) return out;
    if (body.length < eol + 2 + size + 2) return out;
    out += body.slice(eol + 2, eol + 2 + size);
    if (body.slice(eol + 2 + size, eol + 4 + size) !== '\r\n') throw new Error('chunk not followed by CRLF');
    i = eol + 4 + size;
  }
}
