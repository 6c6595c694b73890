/**
 * The SDK against a scripted server: reconnect timing (fake clock, fixed random), resume positions, dedupe, the
 * server's disconnect reasons, token refresh and transport fallback. Real sockets; only time and chance are fake.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';
import { EventSource } from 'eventsource';
import WebSocket from 'ws';
import { HeraldClient, type ClientOptions } from '@herald/client';
import { FakeClock, recordEvents, ScriptedServer, until, type EventLog } from './fakes.js';

let server: ScriptedServer;
let clock: FakeClock;
let client: HeraldClient | undefined;
let log: EventLog;

beforeEach(async () => {
  server = await ScriptedServer.start();
  clock = new FakeClock();
});
afterEach(async () => {
  client?.disconnect();
  client = undefined;
  await server.close();
});

function start(options: Partial<ClientOptions> = {}): HeraldClient {
  const c = new HeraldClient(server.url, {
    channels: ['news'],
    transports: ['sse'],
    minReconnectDelayMs: 100,
    maxReconnectDelayMs: 1000,
    ...options,
    platform: { EventSource, WebSocket, clock, random: () => 0.5, ...options.platform },
  });
  log = recordEvents(c);
  client = c;
  c.connect();
  return c;
}

test('backoff grows as full jitter within [0, min(cap, base * 2^attempt)) and resets after a connection', async () => {
  server.mode = 'refuse';
  const c = start();
  const expected = [100, 200, 400, 500, 500]; // 0.5 * min(1000, 100 * 2^n) for n = 1..5
  for (let i = 0; i < expected.length; i++) {
    await until(() => log.connecting.length === i + 2, `retry #${i + 1} scheduled`);
    assert.equal(log.connecting[i + 1]?.delayMs, expected[i]);
    assert.equal(log.connecting[i + 1]?.attempt, i + 1);
    assert.equal(server.requests.length, i + 1, 'no request before the delay has passed');
    if (i === expected.length - 1) server.mode = 'accept';
    clock.advance((expected[i] as number) - 1);
    assert.equal(server.requests.length, i + 1);
    clock.advance(1);
    await server.waitRequests(i + 2);
  }
  await until(() => c.state === 'connected', 'connected');
  assert.deepEqual(log.connected, [{ transport: 'sse', resumed: false }]);

  server.drop();
  await until(() => c.state === 'connecting' && log.connecting.length === 7, 'reconnect scheduled');
  assert.deepEqual(log.disconnected.at(-1), { reason: 'connection lost', reconnect: true });
  assert.equal(log.connecting.at(-1)?.attempt, 0);
  assert.equal(log.connecting.at(-1)?.delayMs, 50, 'after a connection, the first retry waits within [0, base)');
  clock.advance(50);
  await until(() => c.state === 'connected', 'reconnected');
  assert.deepEqual(
    log.state.map((s) => s.state),
    ['connecting', 'connected', 'connecting', 'connected'],
  );
});

test('every reconnect resumes from the last delivered id; duplicates are dropped', async () => {
  const c = start();
  await until(() => c.state === 'connected', 'connected');
  assert.equal(server.requests[0]?.query.get('lastEventId'), null, 'the first connection resumes nothing');
  server.message('news', 'a', '1-e');
  server.message('news', 'b', '2-e');
  await until(() => log.message.length === 2, 'two messages');
  server.drop();
  await until(() => log.connecting.length === 2, 'retry scheduled');
  clock.advance(1000);
  await until(() => c.state === 'connected', 'reconnected');
  assert.equal(server.requests[1]?.query.get('lastEventId'), '2-e');
  assert.deepEqual(log.connected.at(-1), { transport: 'sse', resumed: true });
  // A server that replays one message too many: the application still sees it once.
  server.message('news', 'b', '2-e');
  server.message('news', 'c', '3-e');
  await until(() => log.message.length === 3, 'third message');
  assert.deepEqual(log.message.map((m) => m.data), ['a', 'b', 'c']);
  assert.deepEqual(c.positions(), { news: '3-e' });
});

test('several channels resume with one cursor: keys first, then channels, in the order given', async () => {
  const c = start({ channels: ['a', 'b', 'c'], keys: ['K'], since: { c: '9-x' } });
  await until(() => c.state === 'connected', 'connected');
  assert.equal(server.requests[0]?.query.get('lastEventId'), ',,,9-x');
  server.message('a', 'x', '4-e', ',4-e,,9-x');
  await until(() => log.message.length === 1, 'message');
  server.drop();
  await until(() => log.connecting.length === 2, 'retry');
  clock.advance(1000);
  await server.waitRequests(2);
  assert.equal(server.requests[1]?.query.get('lastEventId'), ',4-e,,9-x');
  assert.deepEqual(server.requests[1]?.query.getAll('channel'), ['a', 'b', 'c']);
});

test('a disconnect with reconnect=false stops the client and says why', async () => {
  const c = start();
  await until(() => c.state === 'connected', 'connected');
  server.disconnect('forbidden', 3506, false);
  await until(() => c.state === 'disconnected', 'disconnected');
  assert.deepEqual(log.disconnected, [{ reason: 'forbidden', code: 3506, reconnect: false }]);
  assert.deepEqual(clock.pending(), [], 'no retry is scheduled');
});

test('reload and insufficient_state tell the application to reload; positions follow the server', async () => {
  const c = start({ channels: ['a', 'b', 'c'] });
  await until(() => c.state === 'connected', 'connected');
  server.message('a', '1', '1-e', '1-e,,');
  server.message('b', '1', '1-f', '1-e,1-f,');
  server.reload('a', 'epoch', '0-g');
  server.reload('c', 'expired', '');
  await until(() => log.missed.length === 2, 'missed');
  assert.deepEqual(log.missed, [
    { channels: ['a'], reason: 'epoch' },
    { channels: ['c'], reason: 'expired' },
  ]);
  assert.deepEqual(c.positions(), { a: '0-g', b: '1-f' });
  // Positions that moved without a message reach the client in the next event's cursor.
  server.message('b', '2', '2-f', '0-g,2-f,5-h');
  await until(() => log.message.length === 3, 'third message');
  assert.deepEqual(c.positions(), { a: '0-g', b: '2-f', c: '5-h' });
  server.disconnect('insufficient_state', 3010, true);
  await until(() => log.missed.length === 3 && c.state === 'connecting', 'missed, reconnecting');
  assert.deepEqual(log.missed[2], { channels: [], reason: 'insufficient_state' });
  assert.deepEqual(log.disconnected.at(-1), { reason: 'insufficient_state', code: 3010, reconnect: true });
  assert.deepEqual(c.positions(), {});
  clock.advance(1000);
  await until(() => c.state === 'connected', 'reconnected');
  assert.equal(server.requests[1]?.query.get('lastEventId'), null);
});

test('an expired token is refreshed through the callback before reconnecting', async () => {
  let issued = 0;
  const c = start({ channels: [], token: 'tok-0', getToken: async () => `tok-${++issued}` });
  await until(() => c.state === 'connected', 'connected');
  assert.equal(server.requests[0]?.query.get('token'), 'tok-0');
  server.disconnect('expired', 3003, true);
  await until(() => log.connecting.length === 2, 'retry');
  clock.advance(1000);
  await until(() => c.state === 'connected', 'reconnected');
  assert.equal(issued, 1);
  assert.equal(server.requests[1]?.query.get('token'), 'tok-1');
});

test('a JWT whose exp has passed is replaced before connecting', async () => {
  const b64 = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  const stale = `${b64({ alg: 'HS256' })}.${b64({ exp: Math.floor(clock.now() / 1000) - 60 })}.sig`;
  const c = start({ channels: [], token: stale, getToken: async () => 'fresh' });
  await until(() => c.state === 'connected', 'connected');
  assert.equal(server.requests[0]?.query.get('token'), 'fresh');
});

test('WebSocket first, then SSE: a transport that fails to connect hands over at once', async () => {
  const c = start({ transports: ['websocket', 'sse'] });
  await until(() => c.state === 'connected', 'connected');
  assert.equal(c.transport, 'sse');
  assert.equal(log.error[0]?.transport, 'websocket');
  assert.deepEqual(log.connecting.map((e) => e.delayMs), [0], 'no backoff between transports of one round');
  assert.deepEqual(server.requests.map((r) => r.path), ['/ws', '/sse']);
});

test('an attempt that gets no answer is abandoned after connectTimeoutMs', async () => {
  server.mode = 'hang';
  const c = start({ connectTimeoutMs: 3000 });
  await server.waitRequests(1);
  assert.deepEqual(clock.pending(), [3000]);
  server.mode = 'accept';
  clock.advance(3000);
  assert.match(log.error[0]?.error.message ?? '', /no answer in 3000 ms/);
  assert.equal(log.connecting.at(-1)?.delayMs, 100);
  clock.advance(100);
  await until(() => c.state === 'connected', 'connected on the next try');
});

test('disconnect() stops everything, and connect() resumes where it left off', async () => {
  const c = start();
  await until(() => c.state === 'connected', 'connected');
  server.message('news', 'a', '1-e');
  await until(() => log.message.length === 1, 'message');
  c.disconnect();
  assert.equal(c.state, 'disconnected');
  assert.deepEqual(log.disconnected.at(-1), { reason: 'client', reconnect: false });
  await until(() => server.openStreams === 0, 'stream closed');
  c.connect();
  await until(() => c.state === 'connected', 'connected again');
  assert.equal(server.requests[1]?.query.get('lastEventId'), '1-e');
});
