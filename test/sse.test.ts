/** GET /sse: Server-Sent Events, read by a real EventSource (the `eventsource` package) and on the raw wire. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { EventSource } from 'eventsource';
import { parseHead, RawClient } from './helpers/raw.js';
import { openStream, publish, startServer, type TestServer } from './helpers/server.js';
import { ManualClock } from '../src/util/clock.js';

let node: TestServer;
// The node's ticker runs on a ManualClock: a heartbeat is due when a test moves time, not after real seconds. The
// ticker counts heartbeat intervals from the node's start, so the tests here move it in whole intervals.
const clock = new ManualClock(Date.now());
const HEARTBEAT_MS = 5000;
before(async () => {
  node = await startServer({ heartbeatSeconds: HEARTBEAT_MS / 1000 }, { clock });
});
after(() => node.close());

interface Received {
  type: string;
  data: string;
  lastEventId: string;
}

/** Open an EventSource and resolve once it is open; `events` collects every event of the given types. */
async function connect(url: string, types: string[] = ['message', 'disconnect']): Promise<{ es: EventSource; events: Received[] }> {
  const es = new EventSource(url);
  const events: Received[] = [];
  for (const type of types) {
    es.addEventListener(type, (e: MessageEvent) => events.push({ type, data: String(e.data), lastEventId: e.lastEventId }));
  }
  await new Promise<void>((resolve, reject) => {
    es.onopen = () => resolve();
    es.onerror = (e) => reject(new Error(`EventSource failed: ${e.message ?? 'error'}`));
  });
  es.onerror = null;
  return { es, events };
}

async function until(check: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('payloads with newlines, CR and an injected "data:" line arrive as one event each, intact', async (t) => {
  const { es, events } = await connect(`${node.url}/sse?channel=frame`);
  t.after(() => es.close());
  const payloads = [
    'line1\nline2',
    'a\rb',
    'x\n\ndata: injected',
    '\r\n\r\n',
    'event: disconnect\ndata: ["disconnect","shutdown",3001,true]\n\n',
    'id: 99\nretry: 1\n',
    ': comment\n',
    'plain',
    '',
  ];
  for (const data of payloads) await publish(node.url, { channel: 'frame', data });
  await until(() => events.length >= payloads.length, `${payloads.length} events`);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(events.length, payloads.length, JSON.stringify(events));
  events.forEach((e, i) => {
    assert.equal(e.type, 'message');
    assert.deepEqual(JSON.parse(e.data), ['message', 'frame', payloads[i]]);
  });
});

test('one SSE stream carries several channels', async (t) => {
  const { es, events } = await connect(`${node.url}/sse?channel=s1&channel=s2`);
  t.after(() => es.close());
  await publish(node.url, { channel: 's1', data: 'one' });
  await publish(node.url, { channel: 's2', data: 'two' });
  await until(() => events.length >= 2, 'two events');
  assert.deepEqual(events.map((e) => JSON.parse(e.data) as unknown), [
    ['message', 's1', 'one'],
    ['message', 's2', 'two'],
  ]);
});

test('the stream starts with a retry: line, and idle streams get heartbeat comments', async (t) => {
  const s = await openStream(`${node.url}/sse?channel=hb`);
  t.after(() => s.close());
  assert.equal(s.status, 200);
  assert.equal(s.headers['content-type'], 'text/event-stream; charset=utf-8');
  assert.equal(s.headers['cache-control'], 'no-cache, no-store');
  const [retry, blank] = await s.waitLines(2);
  assert.match(retry ?? '', /^retry: \d+$/);
  assert.equal(blank, '');
  // Nothing one tick before heartbeatSeconds; at heartbeatSeconds a comment line, and nothing else.
  clock.advance(HEARTBEAT_MS - 1000);
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(s.lines, [retry, blank], 'no heartbeat before heartbeatSeconds');
  clock.advance(1000);
  const lines = await s.waitLines(4, 3500);
  assert.deepEqual(lines.slice(2), [':', '']);
});

test('EventSource ignores heartbeats: only real messages become events', async (t) => {
  const { es, events } = await connect(`${node.url}/sse?channel=quiet`);
  t.after(() => es.close());
  // A raw stream on the same node shows the heartbeats were sent: the one ticker writes them to every stream.
  const raw = await openStream(`${node.url}/sse?channel=quiet`);
  t.after(() => raw.close());
  await raw.waitLines(2);
  clock.advance(HEARTBEAT_MS);
  clock.advance(HEARTBEAT_MS);
  assert.deepEqual((await raw.waitLines(6, 3500)).slice(2), [':', '', ':', '']);
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(events, []);
  await publish(node.url, { channel: 'quiet', data: 'now' });
  await until(() => events.length === 1, 'one event');
});

test('a draining node ends SSE streams with a "disconnect" event that says to reconnect', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const { es, events } = await connect(`${s.url}/sse?channel=bye`);
  t.after(() => es.close());
  await s.close();
  await until(() => events.length >= 1, 'the disconnect event');
  es.close();
  assert.equal(events[0]?.type, 'disconnect');
  assert.deepEqual(JSON.parse(events[0]?.data ?? ''), ['disconnect', 'shutdown', 3001, true]);
});

test('the raw SSE framing (HTTP/1.0, not chunked): data: lines with the JSON array, blank line between events', async (t) => {
  const c = new RawClient(node.url);
  t.after(() => c.destroy());
  await c.write('GET /sse?channel=raw HTTP/1.0\r\n\r\n');
  await c.waitFor((r) => r.includes('retry:'), 3000, 'the preamble');
  await publish(node.url, { channel: 'raw', data: 'x\n\ndata: injected' });
  const expected = 'data: ["message","raw","x\\n\\ndata: injected"]\n\n';
  await c.waitFor((r) => r.includes(expected), 3000, 'the event');
  const head = parseHead(c.received);
  assert.equal(head.status, 200);
  assert.equal(head.headers['transfer-encoding'], undefined, 'HTTP/1.0: not chunked');
  assert.ok(head.body.startsWith('retry: 2000\n\n'), JSON.stringify(head.body));
  assert.ok(!head.body.includes('\ndata: injected\n'), 'the payload never starts a line of its own');
});

test('errors on /sse are JSON statuses before the stream starts', async () => {
  for (const [path, status, code] of [
    ['/sse', 400, 'bad_request'],
    ['/sse?channel=', 400, 'invalid_channel'],
  ] as const) {
    const res = await fetch(node.url + path);
    assert.equal(res.status, status, path);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, code);
  }
});
