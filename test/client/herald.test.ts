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
import { CuttableProxy } from '../helpers/cuttable-proxy.js';
import { eventually, publish, startServer, type TestServer } from '../helpers/server.js';

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

/**
 * Does the node replay history on this transport? Two messages are published, then a resume from the first must
 * bring the second at once. While the server does not (it answers a `reload` with `no_history`, or waits as for a
 * fresh poll), the SDK's test for that transport is reported as a TODO, not passed.
 */
async function serverResumes(node: TestServer, transport: TransportName, channel: string): Promise<boolean> {
  const first = (await publish(node.url, { channel, data: 'probe 1' })).body as { id?: string };
  await publish(node.url, { channel, data: 'probe 2' });
  if (first.id === undefined) return false;
  if (transport === 'sse') return true;
  if (transport === 'poll') {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), 1000);
    try {
      const res = await fetch(`${node.url}/poll?channel=${channel}&since=${first.id}`, { signal: ac.signal });
      return (await res.text()).includes('probe 2');
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }
  return new Promise((resolve) => {
    const ws = new WebSocket(`${node.url.replace('http', 'ws')}/ws`);
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      ws.terminate();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 1000);
    ws.on('open', () => ws.send(JSON.stringify({ op: 'subscribe', id: 1, channel, since: first.id })));
    ws.on('message', (raw) => {
      const f = JSON.parse(String(raw)) as { type?: string; data?: string };
      if (f.type === 'message' && f.data === 'probe 2') done(true);
      if (f.type === 'reload') done(false);
    });
    ws.on('error', () => done(false));
  });
}

/** Does this node give messages ids (history on)? Resume needs it. */
async function hasHistory(node: TestServer, channel: string): Promise<boolean> {
  const res = await publish(node.url, { channel, data: 'probe' });
  return typeof (res.body as { id?: unknown }).id === 'string';
}

for (const transport of ['sse', 'websocket'] as const) test(`${transport}: several channels, in order, and the node restarted on the same port`, async () => {
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
  test(`${transport}: 1,000 messages published while the connection is cut arrive once, in order`, async (t) => {
    const node = await startServer({ historySize: 2000 });
    cleanup.push(() => node.close());
    const channel = `resume.${transport}`;
    if (!(await hasHistory(node, channel))) {
      t.skip('this node gives messages no ids: resume cannot be tested');
      return;
    }
    const resumes = await serverResumes(node, transport, `${channel}.probe`);
    // A known gap should be reported quickly, not waited out.
    const patience = resumes ? 15_000 : 3000;
    if (!resumes) {
      t.todo(`the server does not resume on ${transport} yet (docs/protocol.md says it will): the SDK cannot be proven here`);
    }
    const proxy = await CuttableProxy.start(node.url);
    cleanup.push(() => proxy.close());
    const { client, got } = sdk(proxy.url, [channel], [transport]);
    const connected: TransportName[] = [];
    client.on('connected', (e) => connected.push(e.transport));
    await eventually(() => client.state === 'connected', 5000, 'connected');
    for (let i = 0; i < 10; i++) await publish(node.url, { channel, data: `before ${i}` });
    await eventually(() => got.length === 10, patience, 'first 10');

    proxy.block();
    proxy.cut();
    await eventually(() => client.state === 'connecting', 5000, 'cut noticed');
    for (let i = 0; i < 1000; i++) await publish(node.url, { channel, data: `during ${i}` });
    proxy.unblock();
    await eventually(() => client.state === 'connected', 10_000, 'reconnected');
    for (let i = 0; i < 10; i++) await publish(node.url, { channel, data: `after ${i}` });
    await eventually(() => got.length >= 1020, patience, '1,020 messages');
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
