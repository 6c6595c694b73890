// GET /ws with the `ws` npm package as the client (a client nobody here wrote): the JSON protocol of docs/protocol.md.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { eventually, publish, startServer, type TestServer } from './helpers/server.js';
import { ManualClock } from '../src/util/clock.js';
import { openWs, type WsClient } from './helpers/ws.js';

let node: TestServer;
before(async () => {
  node = await startServer({ maxChannelsPerConnection: 3, wsMaxFrameBytes: 1024 });
});
after(() => node.close());

function counts(s: TestServer): [number, number, number] {
  return [s.server.node.sessionCount(), s.server.node.hub.subscriptionCount(), s.server.node.broker.subscribedCount()];
}

/** A control subscriber on channel `control`: must keep receiving, in order, whatever the test does. */
async function control(s: TestServer): Promise<{ client: WsClient; check(): Promise<void> }> {
  const client = await openWs(`${s.url}/ws?channel=control`);
  let n = 0;
  return {
    client,
    async check() {
      const want = ++n;
      await publish(s.url, { channel: 'control', data: `c${want}` });
      await client.waitFrames((f) => f.filter((x) => x.type === 'message').length >= want, 5000, 'control message');
      assert.deepEqual(
        client.messages().map((m) => m.data),
        Array.from({ length: want }, (_, i) => `c${i + 1}`),
      );
    },
  };
}

describe('subscribing', () => {
  test('URL credentials: the channels are live once the socket is open', async () => {
    const c = await openWs(`${node.url}/ws?channel=u1&channel=u2`);
    await publish(node.url, { channel: 'u1', data: 'one' });
    await publish(node.url, { channel: 'u2', data: 'two' });
    await c.waitFrames((f) => f.length >= 2);
    assert.deepEqual(c.frames, [
      { type: 'message', channel: 'u1', data: 'one' },
      { type: 'message', channel: 'u2', data: 'two' },
    ]);
    c.close();
    await c.closed;
  });

  test('subscribe and unsubscribe frames, replies correlated by id, several channels on one socket', async () => {
    const c = await openWs(`${node.url}/ws`);
    assert.deepEqual(await c.request('subscribe', { channel: 'f1' }), { type: 'reply', id: 1, result: { channel: 'f1' } });
    assert.equal((await c.request('subscribe', { channel: 'f2' })).type, 'reply');
    await publish(node.url, { channels: ['f1', 'f2'], data: { n: 1 } });
    await c.waitFrames((f) => f.filter((x) => x.type === 'message').length >= 2);
    assert.deepEqual(c.messages().map((m) => [m.channel, m.data]), [['f1', { n: 1 }], ['f2', { n: 1 }]]);
    assert.deepEqual(await c.request('unsubscribe', { channel: 'f1' }), { type: 'reply', id: 3, result: {} });
    await publish(node.url, { channel: 'f1', data: 'gone' });
    await publish(node.url, { channel: 'f2', data: 'still' });
    await c.waitFrames((f) => f.filter((x) => x.type === 'message').length >= 3);
    assert.deepEqual(c.messages().map((m) => m.data), [{ n: 1 }, { n: 1 }, 'still']);
    c.close();
    await c.closed;
  });

  test('ping answers; publish from a client where allowed (--dev from loopback)', async () => {
    const c = await openWs(`${node.url}/ws?channel=p1`);
    assert.deepEqual(await c.request('ping'), { type: 'reply', id: 1, result: {} });
    assert.equal((await c.request('publish', { channel: 'p1', data: 'self' })).type, 'reply');
    await c.waitFrames((f) => f.some((x) => x.type === 'message' && x.data === 'self'));
    c.close();
    await c.closed;
  });

  test('errors answer one request and keep the connection', async () => {
    const c = await openWs(`${node.url}/ws`);
    const bad = await c.request('subscribe', { channel: 'x\u0001' });
    assert.equal(bad.type, 'error');
    assert.equal(bad.error?.code, 'invalid_channel');
    const noToken = await c.request('refresh', { token: 'abc' });
    assert.equal(noToken.error?.code, 'bad_request');
    const unauthorized = await c.request('connect', { token: 'not-a-jwt' });
    assert.equal(unauthorized.error?.code, 'unauthorized');
    assert.equal((await c.request('ping')).type, 'reply');
    c.close();
    await c.closed;
  });
});

describe('limits and bad frames (SECURITY-TESTS row 14)', () => {
  test('subscriptions per connection are bounded; nothing over the limit is subscribed', async () => {
    const c = await openWs(`${node.url}/ws?channel=l1&channel=l2`);
    assert.equal((await c.request('subscribe', { channel: 'l3' })).type, 'reply');
    const over = await c.request('subscribe', { channel: 'l4' });
    assert.equal(over.error?.code, 'too_many_channels');
    assert.match(over.error?.message ?? '', /3/);
    c.close();
    await c.closed;
    await assert.rejects(openWs(`${node.url}/ws?channel=a&channel=b&channel=c&channel=d`), { status: 400 });
  });

  for (const [name, send, code] of [
    ['garbage JSON', (ws: WebSocket) => ws.send('{"op":'), 3501],
    ['a JSON value that is not an object', (ws: WebSocket) => ws.send('[1,2]'), 3501],
    ['an unknown op', (ws: WebSocket) => ws.send('{"op":"launch","id":1}'), 3501],
    ['a request without id', (ws: WebSocket) => ws.send('{"op":"ping"}'), 3501],
    ['a binary frame', (ws: WebSocket) => ws.send(Buffer.from('{"op":"ping","id":1}')), 3501],
    ['a frame over wsMaxFrameBytes', (ws: WebSocket) => ws.send(JSON.stringify({ op: 'ping', id: 'x'.repeat(2000) })), 1009],
  ] as const) {
    test(`${name}: closed with ${code}, others undisturbed, counts back to baseline`, async () => {
      const ctl = await control(node);
      await ctl.check();
      const baseline = counts(node);
      const c = await openWs(`${node.url}/ws?channel=victim`);
      send(c.ws);
      const closed = await c.closed;
      assert.equal(closed.code, code);
      await ctl.check();
      await eventually(() => counts(node).join() === baseline.join(), 2000, 'counts back to baseline');
      ctl.client.close();
      await ctl.client.closed;
    });
  }

  test('refused upgrades get HTTP statuses with the JSON error body', async () => {
    const res = await fetch(`${node.url}/ws`);
    assert.equal(res.status, 400);
    const raw = await rawUpgrade(node.url, '/nope');
    assert.match(raw, /^HTTP\/1\.1 404 /);
    assert.match(raw, /"code":"not_found"/);
  });
});

describe('origins (SECURITY-TESTS row 12)', () => {
  let strict: TestServer;
  before(async () => {
    strict = await startServer({ allowedOrigins: ['https://app.example'] });
  });
  after(() => strict.close());

  test('an upgrade from an origin not allowed is refused with 403 before the handshake', async () => {
    const ctl = await control(strict);
    await ctl.check();
    const baseline = counts(strict);
    await assert.rejects(openWs(`${strict.url}/ws?channel=o`, { origin: 'https://evil.example' }), { status: 403 });
    const raw = await rawUpgrade(strict.url, '/ws?channel=o', 'https://evil.example');
    assert.match(raw, /^HTTP\/1\.1 403 /);
    assert.match(raw, /"code":"origin_not_allowed"/);
    const ok = await openWs(`${strict.url}/ws?channel=o`, { origin: 'https://app.example' });
    ok.close();
    await ok.closed;
    await ctl.check();
    await eventually(() => counts(strict).join() === baseline.join(), 2000, 'counts back to baseline');
    ctl.client.close();
    await ctl.client.closed;
  });
});

describe('heartbeats (SECURITY-TESTS row 17)', () => {
  let hb: TestServer;
  // The node's ticker runs on a ManualClock: each heartbeat interval passes when the test moves time.
  const clock = new ManualClock(Date.now());
  before(async () => {
    hb = await startServer({ heartbeatSeconds: 1 }, { clock });
  });
  after(() => hb.close());

  test('a peer that stops answering pings is freed within two heartbeat intervals; a live one stays', async () => {
    const ctl = await control(hb);
    await ctl.check();
    const baseline = counts(hb);
    // autoPong off: the client's TCP stays up but it never answers, as a peer that vanished without FIN.
    const dead = await openWs(`${hb.url}/ws?channel=d1&channel=d2`, { autoPong: false });
    assert.equal(hb.server.node.sessionCount(), baseline[0] + 1);
    // First interval: both are pinged. Two round trips on the live one: its pong is in before the next interval.
    clock.advance(1000);
    await ctl.check();
    await ctl.check();
    assert.equal(hb.server.node.sessionCount(), baseline[0] + 1, 'not freed after one interval');
    // Second interval: the dead one never answered and is freed; the live one answered and stays.
    clock.advance(1000);
    await eventually(() => counts(hb).join() === baseline.join(), 2000, 'dead peer freed');
    await ctl.check();
    assert.equal(ctl.client.ws.readyState, WebSocket.OPEN);
    dead.ws.terminate();
    ctl.client.close();
    await ctl.client.closed;
  });
});

describe('draining', () => {
  test('SIGTERM-style close sends 3001 shutdown: reconnect', async () => {
    const s = await startServer();
    const c = await openWs(`${s.url}/ws?channel=z`);
    const closing = s.close();
    const closed = await c.closed;
    assert.equal(closed.code, 3001);
    assert.equal(closed.reason, 'shutdown');
    await closing;
  });
});

/** Send a hand-written upgrade request and return the raw answer (for refusals the `ws` client hides). */
function rawUpgrade(base: string, path: string, origin?: string): Promise<string> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(u.port), u.hostname, () => {
      sock.write(
        `GET ${path} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n` +
          (origin ? `Origin: ${origin}\r\n` : '') +
          '\r\n',
      );
    });
    let out = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => (out += d));
    sock.on('close', () => resolve(out));
    sock.on('error', reject);
  });
}

describe('permessage-deflate (wsCompression)', () => {
  test('off by default: the offer is declined and frames are shared pre-framed buffers', async () => {
    const c = await openWs(`${node.url}/ws?channel=nz`, { perMessageDeflate: true });
    assert.equal(c.ws.extensions, '');
    c.close();
    await c.closed;
  });

  test('on: a client that accepts gets compressed frames, one that does not gets plain ones, both the same messages', async () => {
    const s = await startServer({ wsCompression: true });
    const zipped = await openWs(`${s.url}/ws`, { perMessageDeflate: true });
    const plain = await openWs(`${s.url}/ws`, { perMessageDeflate: false });
    assert.match(zipped.ws.extensions, /permessage-deflate/);
    assert.equal(plain.ws.extensions, '');
    for (const c of [zipped, plain]) assert.equal((await c.request('subscribe', { channel: 'z' })).type, 'reply');
    const big = 'abc'.repeat(1000);
    await publish(s.url, { channel: 'z', data: big });
    await publish(s.url, { channel: 'z', data: 'small' });
    for (const c of [zipped, plain]) {
      await c.waitFrames(() => c.messages().length === 2);
      assert.deepEqual(c.messages().map((m) => m.data), [big, 'small']);
      c.close();
      await c.closed;
    }
    await s.close();
  });
});

describe('a WebSocket client that stops reading (SECURITY-TESTS row 16 on /ws)', () => {
  test('is disconnected once its bounded queue fills; its channels are released; others undisturbed', async () => {
    const s = await startServer({ maxBodyBytes: 2 << 20, maxQueueBytes: 1 << 20, closeGraceMs: 1000 });
    const ctl = await control(s);
    await ctl.check();
    const baseline = counts(s);
    const slowBefore = s.server.node.metrics.disconnects.get({ reason: 'slow' });
    const c = await openWs(`${s.url}/ws?channel=flood`);
    c.ws.pause();
    const big = 'y'.repeat(512 * 1024);
    // The channels are released at once; the socket (which never reads its close frame) at the grace's end.
    const released = (): boolean => counts(s).slice(1).join() === baseline.slice(1).join();
    for (let i = 0; i < 24 && !released(); i++) await publish(s.url, { channel: 'flood', data: big });
    await eventually(() => counts(s).join() === baseline.join(), 5000, 'slow client freed');
    assert.equal(s.server.node.metrics.disconnects.get({ reason: 'slow' }), slowBefore + 1);
    await ctl.check();
    c.ws.terminate();
    ctl.client.close();
    await ctl.client.closed;
    await s.close();
  });
});
