/**
 * The SDK through an outage (issue 13, items 1 and 6), against the scripted server on a fake clock:
 * - seen ids are compared within one epoch and forgotten on a reload, so the messages a rolled-back Redis hands out
 *   again under old ids reach the application (they were dropped as duplicates: 3,330 lost in a 5 s rollback);
 * - the readiness probe restarts the backoff once the server is back, whether it was unreachable or up without its
 *   broker (503), with one probe in flight at most, and does not cut the backoff short when nothing was down.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';
import { EventSource } from 'eventsource';
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
    maxReconnectDelayMs: 20_000,
    readyProbeIntervalMs: 1000,
    ...options,
    platform: { EventSource, clock, random: () => 0.5 },
  });
  log = recordEvents(c);
  client = c;
  c.connect();
  return c;
}

const probes = (): number => server.requests.filter((r) => r.path === '/readyz').length;
const data = (): string[] => log.message.map((m) => String(m.data));

test('a reload forgets the seen ids: messages handed out again under old ids after a rollback are delivered', async () => {
  const c = start();
  await until(() => c.state === 'connected', 'connected');
  for (let i = 1; i <= 5; i++) server.message('news', `old ${i}`, `${i}-e`);
  await until(() => log.message.length === 5, 'five messages');

  // Redis came back from an older snapshot: offsets 4 and 5 are handed out again in the same epoch, to new messages.
  server.reload('news', 'epoch', '3-e');
  server.message('news', 'new 4', '4-e');
  server.message('news', 'new 5', '5-e');
  server.message('news', 'new 5', '5-e'); // a true duplicate of the new history is still dropped
  await until(() => log.message.length === 7, 'the re-issued ids');
  assert.deepEqual(data(), ['old 1', 'old 2', 'old 3', 'old 4', 'old 5', 'new 4', 'new 5']);
  assert.deepEqual(log.missed, [{ channels: ['news'], reason: 'epoch' }]);
  assert.deepEqual(c.positions(), { news: '5-e' });

  // A reload into a new epoch, then that epoch's history from offset 1, as the server delivers it after the notice.
  server.reload('news', 'epoch', '0-f');
  for (let i = 1; i <= 3; i++) server.message('news', `f ${i}`, `${i}-f`);
  await until(() => log.message.length === 10, 'the new epoch from offset 1');
  assert.deepEqual(data().slice(7), ['f 1', 'f 2', 'f 3']);
  assert.equal(log.missed.length, 2);
});

test('ids are compared within one epoch only: an id seen in another epoch never drops a message', async () => {
  const c = start();
  await until(() => c.state === 'connected', 'connected');
  server.message('news', 'a', '1-e');
  server.message('news', 'b', '2-e');
  // A new epoch without a notice in between (the server moved on), then the old epoch's ids again.
  server.message('news', 'c', '1-g');
  server.message('news', 'c', '1-g');
  server.message('news', 'd', '2-g');
  server.message('news', 'e', '1-e');
  await until(() => log.message.length === 5, 'five messages');
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(data(), ['a', 'b', 'c', 'd', 'e'], 'the duplicate 1-g dropped, nothing else');
});

test('insufficient_state forgets the seen ids of every channel', async () => {
  const c = start({ channels: ['a', 'b'] });
  await until(() => c.state === 'connected', 'connected');
  server.message('a', 'a1', '1-e', '1-e,');
  server.message('b', 'b1', '1-e', '1-e,1-e');
  await until(() => log.message.length === 2, 'two messages');
  server.disconnect('insufficient_state', 3010, true);
  await until(() => c.state === 'connecting' && log.missed.length === 1, 'reconnecting after the notice');
  clock.advance(100);
  await until(() => c.state === 'connected', 'reconnected');
  server.message('a', 'a1 again', '1-e', '1-e,');
  server.message('b', 'b1 again', '1-e', '1-e,1-e');
  await until(() => log.message.length === 4, 'the same ids delivered after the notice');
  assert.deepEqual(log.missed, [{ channels: [], reason: 'insufficient_state' }]);
});

/**
 * Let rounds fail (advancing the fake clock through each wait) until the client waits at least `delayMs`
 * (0.5 x min(cap, 100 x 2^attempt) with the fixed random: 100, 200, 400, ... ms).
 */
async function failUntilWaiting(delayMs: number): Promise<void> {
  for (let round = 1; round <= 20; round++) {
    await until(() => log.connecting.length === round + 1, `retry #${round} scheduled`);
    const wait = log.connecting.at(-1)?.delayMs ?? 0;
    if (wait >= delayMs) return;
    clock.advance(wait);
  }
  throw new Error(`the wait never reached ${delayMs} ms`);
}

const pendingIs = (want: number[]): (() => boolean) => () => JSON.stringify(clock.pending()) === JSON.stringify(want);

// The probe runs at an interval of 800 ms here: with the fixed random the first probe comes 400 ms into a wait, the
// next ones 800 ms after an answer, and a probe without an answer is abandoned after max(2 x 800, 2000) = 2000 ms.
const PROBE = { readyProbeIntervalMs: 800 };

test('server up, broker down: the probe watches /readyz through the 503s and restarts the backoff at the first 200', async () => {
  server.mode = 'refuse'; // /sse and /readyz answer 503, as a node without its Redis does
  const c = start(PROBE);
  await failUntilWaiting(6400); // attempt 7: the wait has grown to 6.4 s
  assert.equal(log.connecting.at(-1)?.attempt, 7);
  const waitsBefore = log.connecting.length;
  const probesBefore = probes();

  clock.advance(400);
  await until(() => probes() === probesBefore + 1, 'first probe');
  await until(pendingIs([800, 6000]), 'the 503 answered; the next probe armed');
  clock.advance(800);
  await until(() => probes() === probesBefore + 2, 'second probe');
  await until(pendingIs([800, 5200]), 'second 503 answered');

  // Redis is back: the node is ready. The next probe sees it and the client retries after 0.5 x 100 ms.
  server.mode = 'accept';
  server.readyz = 200;
  clock.advance(800);
  await until(() => log.connecting.length === waitsBefore + 1, 'backoff restarted');
  assert.deepEqual(log.connecting.at(-1), { attempt: 0, delayMs: 50, reason: 'server ready' });
  assert.deepEqual(clock.pending(), [50], 'the 6.4 s wait is gone, and the probe with it');
  clock.advance(50);
  await until(() => c.state === 'connected', 'connected');
  // 2.05 s after the wait began, against 6.4 s without the probe.
  assert.equal(log.connected.length, 1);
});

test('server unreachable, then back: the first answer after the cut restarts the backoff', async () => {
  server.mode = 'drop'; // every connection cut at once, as a dead server's RST
  const c = start(PROBE);
  await failUntilWaiting(3200);
  const waitsBefore = log.connecting.length;
  const probesBefore = probes();
  clock.advance(400);
  await until(() => probes() === probesBefore + 1, 'first probe');
  await until(pendingIs([800, 2800]), 'the probe failed; the next one armed');
  // Back, but behind a proxy that does not route /readyz: after an unreachable spell, any answer means "reachable".
  server.mode = 'accept';
  server.readyz = 404;
  clock.advance(800);
  await until(() => log.connecting.length === waitsBefore + 1, 'backoff restarted');
  assert.equal(log.connecting.at(-1)?.reason, 'server ready');
  clock.advance(50);
  await until(() => c.state === 'connected', 'connected');
});

test('one probe in flight at most, abandoned after its timeout; none once connected', async () => {
  server.mode = 'refuse';
  server.readyz = 'hang';
  const c = start({ ...PROBE, maxReconnectDelayMs: 60_000 });
  await failUntilWaiting(12_800);
  const probesBefore = probes();
  clock.advance(400);
  await until(() => probes() === probesBefore + 1, 'first probe');
  // The probe hangs: for its whole timeout no second one starts.
  assert.deepEqual(clock.pending(), [2000, 12_400]);
  clock.advance(1999);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(probes(), probesBefore + 1);
  clock.advance(1);
  await until(pendingIs([800, 10_400]), 'the hung probe abandoned; the next one armed');
  clock.advance(800);
  await until(() => probes() === probesBefore + 2, 'second probe');
  assert.equal(log.connecting.at(-1)?.delayMs, 12_800, 'no restart without an answer');

  // The outage ends; the next probe sees it, the client connects and stops probing.
  server.readyz = 200;
  server.mode = 'accept';
  clock.advance(2000);
  await until(pendingIs([800, 7600]), 'second probe abandoned; the third armed');
  clock.advance(800);
  await until(() => log.connecting.at(-1)?.reason === 'server ready', 'restarted: the third probe saw 200');
  clock.advance(50);
  await until(() => c.state === 'connected', 'connected');
  const after = probes();
  clock.advance(10_000);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(probes(), after, 'no probe while connected');
});

test('a 200 with no outage seen leaves the backoff alone (the failure had another cause)', async () => {
  // Long-polling sees the status: a 429 is no outage. (SSE cannot see statuses: its failures count as "unreachable".)
  server.mode = 'refuse';
  server.refuseStatus = 429;
  server.readyz = 200;
  start({ ...PROBE, transports: ['poll'] });
  await failUntilWaiting(1600);
  const waits = log.connecting.length;
  const probesBefore = probes();
  clock.advance(1599);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(probes(), probesBefore + 1, 'one probe in this wait: it saw the server ready, so it stopped');
  assert.equal(log.connecting.length, waits, 'the backoff went on');
  assert.ok(!log.connecting.some((e) => e.reason === 'server ready'));
});

test("a failed attempt counts as the outage seen: a 200 at the wait's first probe restarts the backoff", async () => {
  server.mode = 'refuse'; // 503 on /poll: up, not ready
  start({ ...PROBE, transports: ['poll'] });
  await failUntilWaiting(3200);
  // Ready before the probe ever saw it down: the failed attempts were the evidence.
  server.readyz = 200;
  server.mode = 'accept';
  clock.advance(400);
  await until(() => log.connecting.at(-1)?.reason === 'server ready', 'restarted at the first probe');
  // The retry the probe started fails (the node refuses again): that is no new evidence, so the next 200 waits out
  // the backoff instead of retrying at once.
  server.mode = 'refuse';
  server.readyz = 200;
  clock.advance(50);
  await until(() => log.connecting.length >= 2 && log.connecting.at(-1)?.reason !== 'server ready', 'the retry failed');
  assert.equal(log.connecting.at(-1)?.attempt, 1);
  const probesBefore = probes();
  clock.advance(log.connecting.at(-1)?.delayMs ?? 0);
  await until(() => log.connecting.at(-1)?.attempt === 2, 'attempt 2');
  clock.advance((log.connecting.at(-1)?.delayMs ?? 0) - 1);
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(probes() <= probesBefore + 1);
  assert.ok(!log.connecting.slice(-2).some((e) => e.reason === 'server ready'), 'no second early retry');
});

test('readyProbeIntervalMs: 0 turns the probe off', async () => {
  server.mode = 'refuse';
  start({ readyProbeIntervalMs: 0 });
  await failUntilWaiting(3200);
  clock.advance(3000);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(probes(), 0);
});

for (const transport of ['sse', 'poll'] as const) {
  test(`${transport}: the server says broker_unavailable: the backoff keeps counting but its ceiling stays at 2 s, then it connects`, async () => {
    server.mode = 'broker_down';
    const c = start({ transports: [transport], readyProbeIntervalMs: 0 });
    // Ten failed rounds: without the cap the ceiling would reach 20 s (0.5 x 20 s = 10 s with the fixed random).
    for (let round = 1; round <= 10; round++) {
      await until(() => log.connecting.length === round + 1, `retry #${round} scheduled`);
      if (round === 10) server.mode = 'accept'; // the broker is back: the next attempt connects
      clock.advance(log.connecting.at(-1)?.delayMs ?? 0);
    }
    const waits = log.connecting.slice(1).map((e) => e.delayMs);
    const attempts = log.connecting.slice(1).map((e) => e.attempt);
    assert.deepEqual(attempts, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'each answer is a failed attempt (SSE: the 200 does not reset it)');
    assert.deepEqual(waits, [100, 200, 400, 800, 1000, 1000, 1000, 1000, 1000, 1000], 'full jitter under min(2 s, 100 x 2^n)');
    assert.ok(log.disconnected.every((d) => d.reason === 'broker_unavailable' && d.reconnect), JSON.stringify(log.disconnected));
    if (transport === 'poll') {
      await until(() => server.waitingPolls > 0, 'a poll waiting');
      server.answerPoll([], undefined);
    }
    await until(() => c.state === 'connected', 'connected once the broker is back');
  });
}

test('outageMaxReconnectDelayMs raises or lowers that ceiling; other refusals grow to maxReconnectDelayMs', async () => {
  server.mode = 'broker_down';
  start({ transports: ['poll'], readyProbeIntervalMs: 0, outageMaxReconnectDelayMs: 400 });
  await failUntilWaiting(200);
  for (let round = 0; round < 4; round++) {
    const n = log.connecting.length;
    clock.advance(log.connecting.at(-1)?.delayMs ?? 0);
    await until(() => log.connecting.length === n + 1, 'next retry');
  }
  assert.equal(log.connecting.at(-1)?.delayMs, 200, '0.5 x 400 ms');
  // A plain 503 (no broker_unavailable: say the node is full) is not capped.
  server.mode = 'refuse';
  for (let round = 0; round < 6; round++) {
    const n = log.connecting.length;
    clock.advance(log.connecting.at(-1)?.delayMs ?? 0);
    await until(() => log.connecting.length === n + 1, 'next retry');
  }
  assert.ok((log.connecting.at(-1)?.delayMs ?? 0) >= 3200, `grew past the outage cap: ${log.connecting.at(-1)?.delayMs}`);
});
