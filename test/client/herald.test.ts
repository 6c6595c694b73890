/**
 * The SDK against the real Herald server: messages over each transport the node offers, a node restart on the same
 * port, and resume without loss or duplicates across a cut connection (a proxy cuts it; the node and its history
 * stay up).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { EventSource } from 'eventsource';
import WebSocket from 'ws';
import { HeraldClient, type Message, type TransportName } from '@herald/client';
import { MemoryBroker } from '../../src/broker/memory.js';
import { CuttableProxy } from '../helpers/cuttable-proxy.js';
import { eventually, publish, startServer } from '../helpers/server.js';

const cleanup: (() => unknown)[] = [];
after(async () => {
  for (const f of cleanup.reverse()) await f();
});

function sdk(url: string, channels: string[], transports: TransportName[]): { client: HeraldClient; got: Message[] } {
  const client = new HeraldClient(url, {
    channels,
    transports,
    minReconnectDelayMs: 20,
    maxReconnectDelayMs: 200,
    platform: { EventSource, WebSocket },
  });
  const got: Message[] = [];
  client.on('message', (m) => got.push(m));
  cleanup.push(() => client.disconnect());
  client.connect();
  return { client, got };
}

for (const transport of ['sse', 'websocket', 'poll'] as const) test(`${transport}: several channels, in order, and the node restarted on the same port`, async () => {
  let node = await startServer();
  cleanup.push(() => node.close());
  const port = Number(new URL(node.url).port);
  const { client, got } = sdk(node.url, ['sdk.a', 'sdk.b'], [transport]);
  await eventually(() => client.state === 'connected', 5000, 'connected');
  for (let i = 0; i < 20; i++) await publish(node.url, { channel: i % 2 ? 'sdk.b' : 'sdk.a', data: `m${i}` });
  await eventually(() => got.length === 20, 5000, '20 messages');
  assert.deepEqual(got.filter((m) => m.channel === 'sdk.a').map((m) => m.data), ['m0', 'm2', 'm4', 'm6', 'm8', 'm10', 'm12', 'm14', 'm16', 'm18']);

  const states: string[] = [];
  client.on('state', (s) => states.push(s.state));
  await node.close();
  await eventually(() => client.state === 'connecting', 5000, 'reconnecting');
  node = await startServer({ port });
  await eventually(() => client.state === 'connected', 5000, 'reconnected to the new node');
  await publish(node.url, { channel: 'sdk.a', data: 'after restart' });
  await eventually(() => got.length === 21, 5000, 'message after restart');
  assert.equal(got.at(-1)?.data, 'after restart');
  assert.deepEqual(states, ['connecting', 'connected']);
  assert.equal(client.transport, transport);
});

for (const transport of ['sse', 'websocket', 'poll'] as const) {
  test(`${transport}: 1,000 messages published while the connection is cut arrive once, in order`, async () => {
    const broker = new MemoryBroker();
    const node = await startServer({ historySize: 2000 }, { broker });
    cleanup.push(() => node.close());
    const channel = `resume.${transport}`;
    const proxy = await CuttableProxy.start(node.url);
    cleanup.push(() => proxy.close());
    const { client, got } = sdk(proxy.url, [channel], [transport]);
    const connected: TransportName[] = [];
    client.on('connected', (e) => connected.push(e.transport));
    await eventually(() => client.state === 'connected', 5000, 'connected');
    for (let i = 0; i < 10; i++) await publish(node.url, { channel, data: `before ${i}` });
    await eventually(() => got.length === 10, 5000, 'first 10');

    proxy.block();
    proxy.cut();
    await eventually(() => client.state === 'connecting', 5000, 'cut noticed');
    // Straight into the broker (as a backend's Redis PUBLISH would), with the policy the node gives API publishes:
    // through HTTP the burst alone takes seconds on a shared machine. Before and after go through the API.
    const policy = { size: 2000, ttlMs: 120_000, metaTtlMs: 3_600_000 };
    for (let i = 0; i < 1000; i++) await broker.publish(channel, `during ${i}`, { history: policy });
    proxy.unblock();
    await eventually(() => client.state === 'connected', 10_000, 'reconnected');
    for (let i = 0; i < 10; i++) await publish(node.url, { channel, data: `after ${i}` });
    await eventually(() => got.length >= 1020, 15_000, '1,020 messages');
    await new Promise((r) => setTimeout(r, 100));

    const want = [
      ...Array.from({ length: 10 }, (_, i) => `before ${i}`),
      ...Array.from({ length: 1000 }, (_, i) => `during ${i}`),
      ...Array.from({ length: 10 }, (_, i) => `after ${i}`),
    ];
    assert.deepEqual(got.map((m) => m.data), want);
    assert.equal(new Set(got.map((m) => m.id)).size, got.length, 'every id once');
    assert.deepEqual(connected, [transport, transport]);
  });
}
