/**
 * The SDK's WebSocket transport against a scripted `/ws`: per-channel resume in `subscribe`, close codes read by
 * their ranges, refusals, and dead-peer detection with the protocol's `ping` op on a fake clock.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';
import WebSocket from 'ws';
import { HeraldClient, type ClientOptions } from '@herald/client';
import { FakeClock, recordEvents, ScriptedServer, until, type EventLog } from './fakes.js';

let server: ScriptedServer;
let clock: FakeClock;
let client: HeraldClient | undefined;
let log: EventLog;

beforeEach(async () => {
  server = await ScriptedServer.start();
  server.ws.enabled = true;
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
    transports: ['websocket'],
    minReconnectDelayMs: 100,
    maxReconnectDelayMs: 1000,
    pingIntervalMs: 10_000,
    ...options,
    platform: { WebSocket, clock, random: () => 0.5 },
  });
  log = recordEvents(c);
  client = c;
  c.connect();
  return c;
}

const subscribes = (): Record<string, unknown>[] => server.wsFrames.filter((f) => f['op'] === 'subscribe');

test('connects with the token in a frame, subscribes each channel, and resumes each from its own last id', async () => {
  const c = start({ token: 'T', keys: ['K'] });
  await until(() => c.state === 'connected', 'connected');
  assert.equal(server.requests[0]?.query.toString(), '', 'no credentials in the URL');
  assert.deepEqual(server.wsFrames.slice(0, 4).map((f) => [f['op'], f['token'] ?? f['channel'] ?? f['key'], f['since']]), [
    ['connect', 'T', undefined],
    ['subscribe', 'a', undefined],
    ['subscribe', 'b', undefined],
    ['subscribe', 'K', undefined],
  ]);
  server.wsSend({ type: 'message', channel: 'a', data: 'x', id: '1-e' });
  server.wsSend({ type: 'message', channel: 'K', data: 'y', id: '7-e' });
  server.wsSend({ type: 'position', channel: 'b', id: '3-e' });
  server.wsSend({ type: 'message', channel: 'a', data: 'x', id: '1-e' });
  await until(() => log.message.length === 2, 'messages');
  server.wsClose(3001, 'shutdown');
  await until(() => log.disconnected.length === 1, 'disconnected');
  assert.deepEqual(log.disconnected[0], { reason: 'shutdown', code: 3001, reconnect: true });
  server.wsFrames.length = 0;
  clock.advance(50);
  await until(() => c.state === 'connected', 'reconnected');
  assert.deepEqual(subscribes().map((f) => [f['channel'] ?? f['key'], f['since']]), [
    ['a', '1-e'],
    ['b', '3-e'],
    ['K', '7-e'],
  ]);
  assert.deepEqual(log.message.map((m) => m.data), ['x', 'y']);
});

test('a close code in 3500-3999 stops the client; a reload frame reports missed messages', async () => {
  const c = start();
  await until(() => c.state === 'connected', 'connected');
  server.wsSend({ type: 'reload', channel: 'a', reason: 'expired', id: '9-f' });
  await until(() => log.missed.length === 1, 'missed');
  assert.deepEqual(log.missed[0], { channels: ['a'], reason: 'expired' });
  assert.deepEqual(c.positions(), { a: '9-f' });
  server.wsClose(3506, 'forbidden');
  await until(() => c.state === 'disconnected', 'stopped');
  assert.deepEqual(log.disconnected.at(-1), { reason: 'forbidden', code: 3506, reconnect: false });
  assert.deepEqual(clock.pending(), []);
});

test('a refused subscribe (403) stops the client instead of retrying forever', async () => {
  server.ws.reply = false;
  const c = start({ channels: ['secret'] });
  await until(() => subscribes().length === 1, 'subscribe sent');
  server.wsSend({ type: 'error', id: subscribes()[0]?.['id'], error: { code: 'forbidden', message: 'channel not granted' } });
  await until(() => c.state === 'disconnected', 'stopped');
  assert.deepEqual(log.disconnected.at(-1), { reason: 'forbidden', reconnect: false });
});

test('a server that stops answering is given up after one silent ping interval, then the client reconnects', async () => {
  const c = start();
  await until(() => c.state === 'connected', 'connected');
  clock.advance(10_000);
  await until(() => server.wsFrames.some((f) => f['op'] === 'ping'), 'first ping');
  await new Promise((r) => setTimeout(r, 50)); // its answer arrives
  clock.advance(10_000);
  await until(() => server.wsFrames.filter((f) => f['op'] === 'ping').length === 2, 'second ping');
  assert.equal(c.state, 'connected', 'answered pings keep the connection');
  server.ws.answerPings = false;
  await new Promise((r) => setTimeout(r, 50));
  clock.advance(10_000); // the third ping goes out; nothing comes back
  await until(() => server.wsFrames.filter((f) => f['op'] === 'ping').length === 3, 'third ping');
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(c.state, 'connected');
  clock.advance(10_000); // a whole interval of silence
  await until(() => c.state === 'connecting', 'given up');
  assert.deepEqual(log.disconnected.at(-1), { reason: 'connection lost', reconnect: true });
  server.ws.answerPings = true;
  clock.advance(1000);
  await until(() => c.state === 'connected', 'reconnected');
});

test('a token is refreshed in place shortly before the expiry the server announced', async () => {
  server.ws.tokenResult = { client: '1', expiresAt: clock.now() + 60_000 };
  let issued = 0;
  // Pings off: the clock jumps 55 s at once, faster than any server could answer them.
  const c = start({ channels: ['a'], token: 'T0', getToken: async () => `T${++issued}`, pingIntervalMs: 0 });
  await until(() => c.state === 'connected', 'connected');
  assert.deepEqual(clock.pending(), [55_000], 'the refresh, 5 s before expiry');
  server.ws.tokenResult = { client: '1', expiresAt: clock.now() + 120_000 };
  clock.advance(55_000);
  await until(() => server.wsFrames.some((f) => f['op'] === 'refresh'), 'refresh sent');
  assert.equal(server.wsFrames.find((f) => f['op'] === 'refresh')?.['token'], 'T1');
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(c.state, 'connected');
  assert.equal(log.connected.length, 1, 'no reconnect was needed');
});
