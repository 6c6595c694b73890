/**
 * The SDK (default options) against a real node whose Redis is killed and restarted (issue 12 §1, the SDK's part):
 * 30 clients per transport are cut off during the outage, so every one reconnects while the broker is down and is
 * told `broker_unavailable`; none stops, each keeps its reconnect delay under 2 s, and each is back (connected and
 * given a message published after the return) soon after its node's broker comes back (2 s on a quiet machine;
 * asserted 3.5 s for a loaded one), with nothing lost or delivered twice.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { EventSource } from 'eventsource';
import WebSocket from 'ws';
import { HeraldClient, type TransportName } from '@herald/client';
import { CuttableProxy } from '../helpers/cuttable-proxy.js';
import { startNodeOnRedis, startRedis } from '../helpers/redis.js';
import { eventually, publish } from '../helpers/server.js';

const cleanup: (() => unknown)[] = [];
after(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const CLIENTS = 30;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

for (const transport of ['websocket', 'sse', 'poll'] as const satisfies readonly TransportName[]) {
  test(`${transport}: ${CLIENTS} SDK clients cut off during a Redis outage are back soon after the broker's return`, async (t) => {
    const redis = await startRedis();
    cleanup.push(() => redis.stop());
    const node = await startNodeOnRedis(redis.url, { historySize: 100, brokerWaitMs: 1500, redisTimeoutMs: 500, redisProbeIntervalMs: 100 });
    cleanup.push(() => node.close());
    const proxy = await CuttableProxy.start(node.url);
    cleanup.push(() => proxy.close());
    const channel = `sdk.outage.${transport}`;

    const clients = Array.from({ length: CLIENTS }, () => {
      const client = new HeraldClient(proxy.url, { channels: [channel], transports: [transport], platform: { EventSource, WebSocket } });
      const got: string[] = [];
      const gotAt: number[] = [];
      const delays: number[] = [];
      const reasons: string[] = [];
      let stopped = false;
      client.on('message', (m) => {
        got.push(String(m.data));
        gotAt.push(Date.now());
      });
      client.on('connecting', (e) => delays.push(e.delayMs));
      client.on('disconnected', (e) => {
        reasons.push(e.reason);
        if (!e.reconnect) stopped = true;
      });
      // An attempt that never opened (a /ws subscribe refused) is reported as an error, with the server's code.
      client.on('error', (e) => reasons.push(e.error.message));
      cleanup.push(() => client.disconnect());
      client.connect();
      return { client, got, gotAt, delays, reasons, stopped: () => stopped };
    });
    await eventually(() => clients.every((c) => c.client.state === 'connected'), 10_000, 'every client connected');
    const want: string[] = [];
    const send = async (data: string): Promise<void> => {
      assert.equal((await publish(node.url, { channel, data })).status, 200);
      want.push(data);
    };
    for (let i = 0; i < 3; i++) await send(`before ${i}`);
    await eventually(() => clients.every((c) => c.got.length === 3), 15_000, 'live messages');

    await redis.kill();
    await eventually(() => !node.server.node.isReady(), 5000, 'the node to see Redis gone');
    const delaysBefore = clients.map((c) => c.delays.length);
    proxy.cut();
    await sleep(6000);
    assert.ok(
      clients.every((c) => c.reasons.some((r) => r.startsWith('broker_unavailable'))),
      `every client was told broker_unavailable: ${JSON.stringify(clients[0]?.reasons)}`,
    );

    await redis.restart();
    await eventually(() => node.server.node.isReady(), 8000, 'the node ready again');
    const ready = Date.now();
    await send('after');
    await eventually(() => clients.every((c) => c.got.includes('after')), 10_000, 'every client to get the message after the return');
    const backMs = clients.map((c) => c.gotAt[c.got.indexOf('after')]! - ready).sort((a, b) => a - b);
    const outageDelays = clients.flatMap((c, i) => c.delays.slice(delaysBefore[i]));
    for (let i = 0; i < 2; i++) await send(`later ${i}`);
    await eventually(() => clients.every((c) => c.got.length >= want.length), 5000, 'the last messages');

    t.diagnostic(
      `${transport}: back after the node's broker returned: median ${backMs[backMs.length >> 1]} ms, max ${backMs.at(-1)} ms; ` +
        `reconnect delays during the outage: ${outageDelays.length}, longest ${Math.max(...outageDelays)} ms`,
    );
    assert.ok(clients.every((c) => !c.stopped()), 'no client stopped');
    // Redis restarted empty: a new epoch, so each client got a `missed` notice and then the new epoch's messages.
    for (const c of clients) assert.deepEqual(c.got, want, 'every message once, in order');
    assert.ok(Math.max(...outageDelays) < 2000, `every reconnect delay under 2 s (longest ${Math.max(...outageDelays)} ms)`);
    // The aim is 2 s (the reconnect cap); the bound leaves room for a loaded machine (the full suite: 2.7 s seen).
    assert.ok(backMs.at(-1)! <= 3500, `every client back within 3.5 s of the broker's return (slowest ${backMs.at(-1)} ms)`);
  });
}
