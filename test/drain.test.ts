/**
 * Issue 13 item 4, drain: `herald serve` on SIGTERM closes idle keep-alive publisher connections at once, refuses
 * publishes with 503 `unavailable` + Retry-After (never an ack while draining), and exits as soon as the last client
 * is gone instead of always waiting `drainTimeoutMs`.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, test } from 'node:test';
import type { PublishOptions, PublishResult } from '../src/broker/broker.js';
import { MemoryBroker } from '../src/broker/memory.js';
import { cleanEnv, killAll, startHerald, type RunningHerald } from './helpers/cli.js';
import { parseHead, RawClient } from './helpers/raw.js';
import { openStream, startServer, TEST_API_KEY } from './helpers/server.js';
import { openWs } from './helpers/ws.js';

after(killAll);

const KEY = 'drain-key-0123456789';
const DRAIN_TIMEOUT_MS = 8000;

function start(): Promise<RunningHerald> {
  return startHerald(
    ['--port', '0', '--host', '127.0.0.1', '--heartbeat-seconds', '3600'],
    cleanEnv({
      HERALD_SECRET: 'drain-secret-0123456789-abcdefghijklmnopqrstu',
      HERALD_API_KEYS: KEY,
      HERALD_DRAIN_TIMEOUT_MS: String(DRAIN_TIMEOUT_MS),
      HERALD_METRICS_PUBLIC: 'true',
      HERALD_NAMESPACES: JSON.stringify({ public: { anonymous: true } }),
    }),
  );
}

function publishRequest(channel: string, data: string, target = '/api/publish', key = KEY): string {
  const body = JSON.stringify({ channel, data });
  return (
    `POST ${target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

/** A kept-alive publisher connection that published once and now sits idle. */
async function idlePublisher(url: string, target: string): Promise<RawClient> {
  const c = new RawClient(url);
  await c.write(publishRequest('public:a', 'before', target));
  await c.waitFor((r) => /"id":/.test(r), 5000, 'the publish answer');
  return c;
}

async function sessions(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^herald_sessions (\d+)$/m.exec(text)?.[1] ?? NaN);
}

test('SIGTERM with only idle keep-alive publishers: they are closed at once and the process exits at once', async () => {
  const node = await start();
  const fast = await idlePublisher(node.url, '/api/publish');
  const slow = await idlePublisher(node.url, '/api/publish?');
  const signalled = Date.now();
  node.proc.kill('SIGTERM');
  await fast.waitClose(2000);
  await slow.waitClose(2000);
  const exit = await node.exited;
  const took = Date.now() - signalled;
  assert.equal(exit.code, 0, exit.stderr);
  // Before: always the full drainTimeoutMs while any keep-alive publisher was open.
  assert.ok(took < 1000, `exited ${took} ms after SIGTERM (drain timeout ${DRAIN_TIMEOUT_MS} ms)`);
});

test('drain with idle publishers and streams: publishes get 503 + Retry-After, the process exits within 1 s of the last stream leaving', async (t) => {
  const node = await start();
  const fast = await idlePublisher(node.url, '/api/publish');
  const slow = await idlePublisher(node.url, '/api/publish?');
  const sub = await openStream(`${node.url}/sub?channel=public:a`);
  const sse = await openStream(`${node.url}/sse?channel=public:a`);
  const ws = await openWs(`${node.url}/ws?channel=public:a`);
  // The last stream: a raw /sub client that keeps its side open after the server's FIN, until it decides to leave.
  const lingering = net.connect({ port: Number(new URL(node.url).port), host: '127.0.0.1', allowHalfOpen: true });
  t.after(() => lingering.destroy());
  let lingeringGot = '';
  lingering.on('data', (d: Buffer) => (lingeringGot += d.toString('latin1')));
  lingering.on('error', () => undefined);
  lingering.write('GET /sub?channel=public:a HTTP/1.1\r\nHost: x\r\n\r\n');
  for (let i = 0; (await sessions(node.url)) !== 4; i++) {
    if (i > 500) throw new Error('never reached 4 streams');
    await new Promise((r) => setTimeout(r, 20));
  }

  const signalled = Date.now();
  node.proc.kill('SIGTERM');
  // Idle publishers are closed at once; the streams are told to reconnect elsewhere.
  await fast.waitClose(2000);
  await slow.waitClose(2000);
  const publishersClosed = Date.now() - signalled;
  assert.deepEqual(await sub.waitLines(1), ['["disconnect","shutdown",3001,true]']);
  await sse.ended;
  assert.equal((await ws.closed).code, 3001);

  // While the node drains (the lingering stream keeps it up), a publish is refused, on either path, and not acked.
  for (const target of ['/api/publish', '/api/publish?']) {
    const c = new RawClient(node.url);
    t.after(() => c.destroy());
    await c.write(publishRequest('public:a', 'during-drain', target));
    await c.waitClose(3000);
    const res = parseHead(c.received);
    assert.equal(res.status, 503, `${target}: ${c.received}`);
    assert.equal(res.headers['retry-after'], '1');
    assert.equal(res.headers['connection'], 'close');
    assert.match(res.body, /"code":"unavailable"/);
    assert.doesNotMatch(c.received, /"id":/);
  }
  const ready = await fetch(`${node.url}/readyz`);
  assert.equal(ready.status, 503);
  await ready.text();
  assert.match(lingeringGot, /\["disconnect","shutdown",3001,true\]/);

  // The last client leaves 1.5 s into the drain; the process must follow within 1 s, long before the drain timeout.
  await new Promise((r) => setTimeout(r, Math.max(0, 1500 - (Date.now() - signalled))));
  assert.equal(node.proc.exitCode, null, 'still draining while a client is connected');
  lingering.destroy();
  const left = Date.now();
  const exit = await node.exited;
  const exitedAfter = Date.now() - left;
  assert.equal(exit.code, 0, exit.stderr);
  t.diagnostic(`idle publishers closed ${publishersClosed} ms after SIGTERM; exit ${exitedAfter} ms after the last stream left`);
  assert.ok(publishersClosed < 1000, `idle publishers closed after ${publishersClosed} ms`);
  assert.ok(exitedAfter < 1000, `exited ${exitedAfter} ms after the last stream left`);
});

/** The memory broker, each publish taking 300 ms: a publish is still in flight when the drain starts. */
class SlowBroker extends MemoryBroker {
  override async publish(channel: string, data: string, options?: PublishOptions): Promise<PublishResult> {
    await new Promise((r) => setTimeout(r, 300));
    return super.publish(channel, data, options);
  }
}

test('drain with a publish in flight: its answer is sent, with Connection: close, then the connection closes', async () => {
  const node = await startServer({ dev: false, drainTimeoutMs: DRAIN_TIMEOUT_MS }, { broker: new SlowBroker() });
  try {
    const fast = new RawClient(node.url);
    const slow = new RawClient(node.url);
    await fast.write(publishRequest('a', 'in-flight', '/api/publish', TEST_API_KEY));
    await slow.write(publishRequest('a', 'in-flight', '/api/publish?', TEST_API_KEY));
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    const closed = node.close();
    for (const c of [fast, slow]) {
      await c.waitClose(2000);
      const res = parseHead(c.received);
      assert.equal(res.status, 200, c.received);
      assert.match(res.body, /"id":/);
      assert.equal(res.headers['connection'], 'close');
    }
    await closed;
    const took = Date.now() - started;
    assert.ok(took < 1000, `close() took ${took} ms (drain timeout ${DRAIN_TIMEOUT_MS} ms)`);
  } finally {
    await node.close();
  }
});
