import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { DEFAULTS } from '../src/config.js';
import { openStream, publish, startServer, type TestServer } from './helpers/server.js';

let node: TestServer;
before(async () => {
  node = await startServer({ historySize: DEFAULTS.historySize });
});
after(() => node.close());

test('a /sub stream receives a published message in the seed format', async () => {
  const seed = await openStream(`${node.url}/sub?channel=abc`);
  const withIds = await openStream(`${node.url}/sub?channel=abc&since=`);
  assert.equal(seed.status, 200);
  assert.equal(seed.headers['content-type'], 'application/x-ndjson');
  const res = await publish(node.url, { channel: 'abc', data: '123' });
  assert.equal(res.status, 200);
  // History is on by default: the message has an id, sent as a fourth element only to a stream that asked (since=).
  const { id } = res.body as { id: string };
  assert.match(id, /^1-[0-9a-z]+$/);
  assert.deepEqual(await seed.waitLines(1), ['["message","abc","123"]']);
  // A resuming stream first learns the channel's position, then gets the message with its id.
  const lines = await withIds.waitLines(2);
  assert.match(lines[0] ?? '', /^\["position","abc","0-S[0-9A-Za-z]+"\]$/);
  assert.equal(lines[1], `["message","abc","123","${id}"]`);
  seed.close();
  withIds.close();
});
