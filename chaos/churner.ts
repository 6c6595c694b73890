/**
 * A churn process (scenarios/churn.ts forks two): opens and drops connections of many kinds against one node, as
 * many at a time as it is told, until the parent says stop; then reports how many of each kind it made. Raw sockets
 * where the way a connection ends matters (RST, a request cut in the middle, never reading).
 */
import net from 'node:net';
import WebSocket from 'ws';

type Churn = (host: string, port: number) => Promise<void>;

const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const pick = (n: number): number => Math.floor(Math.random() * n);

/** A raw socket that resolves once closed; `script` drives it. */
function raw(port: number, host: string, script: (s: net.Socket) => void): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    s.on('error', () => undefined);
    s.on('close', () => resolve());
    s.on('connect', () => script(s));
    // Nothing may hang a churner: every connection is gone after 10 s.
    setTimeout(() => s.destroy(), 10_000).unref();
  });
}

const get = (path: string, host: string): string => `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`;

const KINDS: Record<string, Churn> = {
  /** A stream read for a moment, then closed politely (FIN). */
  'sub-fin': (host, port) => raw(port, host, (s) => {
    s.write(get(`/sub?channel=churn.${pick(100)}`, host));
    setTimeout(() => s.end(), 100 + pick(400));
  }),
  /** A stream reset (RST) in the middle. */
  'sub-rst': (host, port) => raw(port, host, (s) => {
    s.write(get(`/sub?channel=chaos.${pick(50)}&since=`, host));
    setTimeout(() => s.resetAndDestroy(), 100 + pick(400));
  }),
  /** A request head that never ends: the client vanishes mid-request. */
  'vanish-mid-request': (host, port) => raw(port, host, (s) => {
    s.write(`GET /sub?channel=churn.${pick(100)} HTTP/1.1\r\nHost: ${host}\r\nX-Half: `);
    setTimeout(() => s.destroy(), 50 + pick(200));
  }),
  /** A stream on a busy channel that is never read, dropped after 2 s. */
  'never-read': (host, port) => raw(port, host, (s) => {
    s.write(get(`/sub?channel=chaos.${pick(50)}`, host));
    s.pause();
    setTimeout(() => s.destroy(), 2000);
  }),
  /** A long-poll answered by the next message (the checked channels get 4 a second). */
  'poll': (host, port) => raw(port, host, (s) => {
    s.write(`GET /poll?channel=chaos.${pick(50)} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    s.resume();
    s.on('end', () => s.destroy());
  }),
  /** A long-poll given up while it waits, on a quiet channel. */
  'poll-abandoned': (host, port) => raw(port, host, (s) => {
    s.write(get(`/poll?channel=churn.${pick(100)}`, host));
    setTimeout(() => s.destroy(), 200 + pick(300));
  }),
  /** An SSE stream read briefly. */
  'sse': (host, port) => raw(port, host, (s) => {
    s.write(get(`/sse?channel=chaos.${pick(50)}`, host));
    s.resume();
    setTimeout(() => s.destroy(), 300 + pick(300));
  }),
  /** A WebSocket that subscribes and closes with a close frame. */
  'ws-close': (host, port) => new Promise((resolve) => {
    const ws = new WebSocket(`ws://${host}:${port}/ws`);
    ws.on('open', () => {
      ws.send(JSON.stringify({ op: 'subscribe', id: 1, channel: `churn.${pick(100)}` }));
      setTimeout(() => ws.close(1000), 200 + pick(300));
    });
    ws.on('error', () => undefined);
    ws.on('close', () => resolve());
  }),
  /** A WebSocket reset under the server's feet. */
  'ws-rst': (host, port) => new Promise((resolve) => {
    const ws = new WebSocket(`ws://${host}:${port}/ws?channel=chaos.${pick(50)}`);
    ws.on('open', () => setTimeout(() => (ws as unknown as { _socket: net.Socket })._socket.resetAndDestroy(), 100 + pick(300)));
    ws.on('error', () => undefined);
    ws.on('close', () => resolve());
  }),
  /** A publish that completes. */
  'publish': (host, port) => raw(port, host, (s) => {
    const body = JSON.stringify({ channel: `churn.${pick(100)}`, data: 'c' });
    s.write(`POST /api/publish HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
    s.resume();
    s.on('end', () => s.destroy());
  }),
  /** A publisher that vanishes halfway through its body. */
  'publish-vanish': (host, port) => raw(port, host, (s) => {
    s.write(`POST /api/publish HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"channel":"churn.x","da`);
    setTimeout(() => s.resetAndDestroy(), 50 + pick(200));
  }),
  /** A connection that sends nothing and goes. */
  'silent': (host, port) => raw(port, host, (s) => {
    setTimeout(() => s.destroy(), 100 + pick(500));
  }),
};

export const CHURN_KINDS = Object.keys(KINDS);

let running = false;
const counts: Record<string, number> = {};

async function loop(host: string, port: number, offset: number): Promise<void> {
  for (let i = offset; running; i++) {
    const kind = CHURN_KINDS[i % CHURN_KINDS.length] as string;
    await (KINDS[kind] as Churn)(host, port);
    counts[kind] = (counts[kind] ?? 0) + 1;
    await wait(pick(20));
  }
}

process.on('message', (m: { type: 'start'; url: string; concurrency: number } | { type: 'stop' }) => {
  if (m.type === 'start') {
    running = true;
    const u = new URL(m.url);
    const loops = Array.from({ length: m.concurrency }, (_, i) => loop(u.hostname, Number(u.port), i));
    void Promise.all(loops).then(() => {
      process.send?.({ type: 'counts', counts });
      process.disconnect();
    });
  } else running = false;
});
process.on('disconnect', () => setTimeout(() => process.exit(0), 100).unref());
