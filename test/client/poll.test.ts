/** The SDK's long-polling transport against a scripted `/poll`: cursors, when it counts as open, and refusals. */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';
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
    channels: ['a', 'b'],
    transports: ['poll'],
    minReconnectDelayMs: 100,
    maxReconnectDelayMs: 1000,
    ...options,
    platform: { clock, random: () => 0.5 },
  });
  log = recordEvents(c);
  client = c;
  c.connect();
  return c;
}

test("a waiting first poll counts as open after the grace; each answer's cursor is sent back", async () => {
  const c = start({ since: { b: '4-e' } });
  await server.waitRequests(1);
  assert.equal(server.requests[0]?.query.get('since'), ',4-e', 'positions in the order the channels were given');
  assert.equal(c.state, 'connecting');
  clock.advance(1000);
  assert.equal(c.state, 'connected');
  server.answerPoll([['message', 'a', 'x', '1-e'], ['position', 'b', '5-e'], ['message', 'a', 'y', '2-e']], '2-e,5-e');
  await server.waitRequests(2);
  assert.equal(server.requests[1]?.query.get('since'), '2-e,5-e');
  assert.deepEqual(log.message.map((m) => m.data), ['x', 'y']);
  assert.deepEqual(c.positions(), { a: '2-e', b: '5-e' });
  server.answerPoll([['reload', 'a', 'expired', '9-f'], ['disconnect', 'shutdown', 3001, true]], '9-f,5-e');
  await until(() => c.state === 'connecting', 'reconnecting after the disconnect element');
  assert.deepEqual(log.missed, [{ channels: ['a'], reason: 'expired' }]);
  assert.deepEqual(log.disconnected, [{ reason: 'shutdown', code: 3001, reconnect: true }]);
  clock.advance(50);
  await server.waitRequests(3);
  assert.equal(server.requests[2]?.query.get('since'), '9-f,5-e');
});

test('a first answer opens at once; a 403 stops the client; a 503 backs off', async () => {
  const c = start();
  await server.waitRequests(1);
  server.answerPoll([], undefined);
  await until(() => c.state === 'connected', 'open at the first answer');
  await server.waitRequests(2);
  server.mode = 'refuse';
  server.refuseStatus = 503;
  server.answerPoll([], undefined); // the parked poll answers; the next one is refused
  await until(() => log.connecting.length === 2, 'backoff after the refusal');
  assert.equal(log.connecting.at(-1)?.delayMs, 50);
  server.refuseStatus = 403;
  clock.advance(50);
  await until(() => c.state === 'disconnected', 'stopped');
  assert.deepEqual(log.disconnected.at(-1), { reason: 'forbidden', reconnect: false });
});
