// Per-session client ids and the node's registry of sessions by id and by channel (issue 9 §1), with real clients.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { signToken } from '../src/auth/jwt.js';
import { eventually, openStream, startServer, TEST_SECRET, type TestServer } from './helpers/server.js';
import { openWs } from './helpers/ws.js';

let a: TestServer;
let b: TestServer;
before(async () => {
  a = await startServer();
  b = await startServer();
});
after(async () => {
  await a.close();
  await b.close();
});

test('every session has a short id that names its node; the node finds it by id and by channel', async () => {
  const node = a.server.node;
  assert.match(node.nodeId, /^[0-9a-z]{7}$/);
  assert.notEqual(node.nodeId, b.server.node.nodeId, 'two nodes draw different ids');
  const stream = await openStream(`${a.url}/sub?channel=reg-1&channel=reg-2`);
  const ws = await openWs(`${a.url}/ws?channel=reg-1`);
  const reply = await ws.request('connect', { token: await signToken({ secret: TEST_SECRET, channels: ['reg-1'], ttlSeconds: 600 }) });
  const wsId = reply.result?.client;
  assert.equal(typeof wsId, 'string');

  const onChannel = node.sessionsOn('reg-1');
  assert.equal(onChannel.length, 2);
  const ids = onChannel.map((s) => s.id);
  assert.ok(ids.includes(wsId as string), 'the id /ws reports is the registry id');
  for (const id of ids) {
    assert.match(id, new RegExp(`^${node.nodeId}-[0-9a-z]+$`));
    assert.ok(id.length <= 16, `short: ${id}`);
    assert.equal(node.findSession(id)?.id, id);
    assert.equal(b.server.node.findSession(id), undefined, 'another node does not hold it');
  }
  assert.equal(new Set(ids).size, 2);
  const sub = onChannel.find((s) => s.id !== wsId)!;
  assert.equal(sub.options.transport, 'sub');
  assert.deepEqual(node.sessionsOn('reg-2').map((s) => s.id), [sub.id]);
  assert.ok(Math.abs(sub.openedAt - Date.now()) < 5000);
  assert.equal(node.findSession('nonsense'), undefined);
  assert.equal(node.findSession(`${node.nodeId}-zzzzzzzz`), undefined);

  // Disconnecting by id ends exactly that client's stream, with its reason.
  node.findSession(sub.id)!.disconnect('disconnected');
  await stream.ended;
  assert.match(stream.lines.at(-1) ?? '', /"disconnected",3530,false/);
  await eventually(() => node.findSession(sub.id) === undefined, 5000, 'gone from the registry');
  assert.deepEqual(node.sessionsOn('reg-1').map((s) => s.id), [wsId]);
  ws.close();
  await ws.closed;
  await eventually(() => node.sessionsOn('reg-1').length === 0, 5000, 'the /ws session left');
});
