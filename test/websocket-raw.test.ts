// A /ws client written from docs/protocol.md and RFC 6455 alone, on a bare TCP socket: the handshake, masked
// request frames, unmasked server frames, ping/pong and the close code, byte by byte.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { publish, startServer, type TestServer } from './helpers/server.js';

let node: TestServer;
before(async () => {
  node = await startServer({ heartbeatSeconds: 1 });
});
after(() => node.close());

interface RawFrame {
  fin: boolean;
  opcode: number;
  payload: Buffer;
}

class RawWs {
  private buffer = Buffer.alloc(0);
  readonly frames: RawFrame[] = [];
  head = '';
  private wake: (() => void) | undefined;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, d]);
      if (!this.head) {
        const end = this.buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        this.head = this.buffer.subarray(0, end).toString('latin1');
        this.buffer = this.buffer.subarray(end + 4);
      }
      this.parse();
      this.wake?.();
    });
  }

  private parse(): void {
    for (;;) {
      const b = this.buffer;
      if (b.length < 2) return;
      assert.equal(b[1]! & 0x80, 0, 'server frames are never masked');
      let len = b[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      if (b.length < off + len) return;
      this.frames.push({ fin: (b[0]! & 0x80) !== 0, opcode: b[0]! & 0x0f, payload: b.subarray(off, off + len) });
      this.buffer = b.subarray(off + len);
    }
  }

  /** A client frame: FIN, the opcode, masked with a random key as RFC 6455 requires. */
  send(opcode: number, payload: Buffer): void {
    const mask = randomBytes(4);
    const n = payload.length;
    const head = n < 126 ? Buffer.from([0x80 | opcode, 0x80 | n]) : Buffer.from([0x80 | opcode, 0x80 | 126, n >> 8, n & 0xff]);
    const body = Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]!));
    this.socket.write(Buffer.concat([head, mask, body]));
  }

  sendJson(value: unknown): void {
    this.send(0x1, Buffer.from(JSON.stringify(value)));
  }

  async until(check: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 5000;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, 50);
      });
    }
  }

  json(): Record<string, unknown>[] {
    return this.frames.filter((f) => f.opcode === 1).map((f) => JSON.parse(f.payload.toString('utf8')) as Record<string, unknown>);
  }
}

test('a from-scratch client: handshake, subscribe, message, ping/pong, bad frame close code', async () => {
  const u = new URL(node.url);
  const socket = net.connect(Number(u.port), u.hostname);
  await new Promise((r) => socket.once('connect', r));
  const c = new RawWs(socket);
  const key = randomBytes(16).toString('base64');
  socket.write(
    `GET /ws HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  await c.until(() => c.head !== '', 'handshake');
  assert.match(c.head, /^HTTP\/1\.1 101 /);
  const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  assert.match(c.head, new RegExp(`Sec-WebSocket-Accept: ${accept.replace(/[+/]/g, '\\$&')}`, 'i'));

  c.sendJson({ op: 'subscribe', id: 'a', channel: 'raw' });
  await c.until(() => c.json().some((f) => f['id'] === 'a'), 'subscribe reply');
  assert.deepEqual(c.json()[0], { type: 'reply', id: 'a', result: { channel: 'raw' } });

  // 200 bytes of data: a 16-bit length on the wire.
  const data = 'd'.repeat(200);
  await publish(node.url, { channel: 'raw', data });
  await c.until(() => c.json().some((f) => f['type'] === 'message'), 'message');
  const frame = c.frames.find((f) => f.opcode === 1 && f.payload.includes('"message"'));
  assert.ok(frame?.fin);
  assert.deepEqual(JSON.parse(frame.payload.toString()), { type: 'message', channel: 'raw', data });

  // The server pings every heartbeat (1 s here); a client that answers stays connected.
  await c.until(() => c.frames.some((f) => f.opcode === 0x9), 'a ping');
  c.send(0xa, Buffer.alloc(0));
  await c.until(() => c.frames.filter((f) => f.opcode === 0x9).length >= 2, 'a second ping');
  c.send(0xa, Buffer.alloc(0));
  assert.ok(!c.frames.some((f) => f.opcode === 0x8), 'not closed while answering pings');

  c.send(0x1, Buffer.from('{"op":"ping"'));
  await c.until(() => c.frames.some((f) => f.opcode === 0x8), 'close frame');
  const close = c.frames.find((f) => f.opcode === 0x8);
  assert.equal(close?.payload.readUInt16BE(0), 3501);
  assert.equal(close?.payload.subarray(2).toString(), 'bad_frame');
  socket.destroy();
});
