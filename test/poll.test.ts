// GET /poll: long-polling, answered at the first message or empty at the poll timeout (swept by the node's ticker).
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { spawnTracked } from './helpers/cli.js';
import { eventually, publish, startServer, type TestServer } from './helpers/server.js';

let node: TestServer;
before(async () => {
  node = await startServer({ pollTimeoutSeconds: 1, maxChannelsPerConnection: 3 });
});
after(() => node.close());

interface PollAnswer {
  messages: unknown[][];
  cursor?: string;
}

function counts(s: TestServer): string {
  return [s.server.node.sessionCount(), s.server.node.hub.subscriptionCount(), s.server.node.broker.subscribedCount()].join();
}

/** Start a poll; resolves once it is waiting (its session is open), with the answer to come (wrapped, so an
 * async function does not adopt it). */
async function startPoll(s: TestServer, query: string): Promise<{ answer: Promise<{ status: number; body: PollAnswer }> }> {
  const before = s.server.node.sessionCount();
  const answer = fetch(`${s.url}/poll?${query}`).then(async (r) => ({ status: r.status, body: (await r.json()) as PollAnswer }));
  await eventually(() => s.server.node.sessionCount() > before, 2000, 'poll waiting');
  return { answer };
}

describe('/poll', () => {
  test('waits for the next message and answers with it; the channels are released', async () => {
    const baseline = counts(node);
    const { answer } = await startPoll(node, 'channel=a1&channel=a2');
    await publish(node.url, { channel: 'a2', data: 'hello' });
    const { status, body } = await answer;
    assert.equal(status, 200);
    assert.deepEqual(body.messages, [['message', 'a2', 'hello']]);
    await eventually(() => counts(node) === baseline, 2000, 'counts back to baseline');
  });

  test('messages delivered in one burst (one publish to several channels) share one answer', async () => {
    const { answer } = await startPoll(node, 'channel=b1&channel=b2');
    await publish(node.url, { channels: ['b1', 'b2'], data: { n: 1 } });
    assert.deepEqual((await answer).body.messages, [
      ['message', 'b1', '{"n":1}'],
      ['message', 'b2', '{"n":1}'],
    ]);
  });

  test('answers an empty batch at the poll timeout, from the shared ticker', async () => {
    const baseline = counts(node);
    const t0 = Date.now();
    const { status, body } = await (await startPoll(node, 'channel=quiet')).answer;
    const waited = Date.now() - t0;
    assert.equal(status, 200);
    assert.deepEqual(body.messages, []);
    assert.ok(waited >= 900 && waited < 3000, `answered after ${waited} ms`);
    assert.equal(counts(node), baseline);
  });

  test('a client that gives up while waiting leaves nothing behind', async () => {
    const baseline = counts(node);
    const before = node.server.node.sessionCount();
    const req = http.get(`${node.url}/poll?channel=gone`, { agent: false });
    req.on('error', () => undefined);
    await eventually(() => node.server.node.sessionCount() > before, 2000, 'poll waiting');
    req.destroy();
    await eventually(() => counts(node) === baseline, 2000, 'counts back to baseline');
  });

  test('errors are HTTP statuses with the JSON body; nothing is subscribed', async () => {
    const baseline = counts(node);
    for (const [query, status, code] of [
      ['channel=a&channel=b&channel=c&channel=d', 400, 'too_many_channels'],
      ['channel=%01', 400, 'invalid_channel'],
      ['', 400, 'bad_request'],
    ] as const) {
      const r = await fetch(`${node.url}/poll?${query}`);
      assert.equal(r.status, status);
      assert.equal(((await r.json()) as { error: { code: string } }).error.code, code);
    }
    const post = await fetch(`${node.url}/poll?channel=a`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(counts(node), baseline);
  });

  test('curl (a client nobody here wrote) long-polls, then follows the cursor', async () => {
    const before = node.server.node.sessionCount();
    const first = spawnTracked('curl', ['-sS', `${node.url}/poll?channel=curl1&channel=curl2`]);
    await eventually(() => node.server.node.sessionCount() > before, 5000, 'curl waiting');
    await publish(node.url, { channel: 'curl2', data: 'from the API' });
    const done = await first.exited;
    assert.equal(done.code, 0, done.stderr);
    const body = JSON.parse(done.stdout) as PollAnswer;
    assert.deepEqual(body.messages, [['message', 'curl2', 'from the API']]);
    assert.equal(typeof body.cursor, 'string');
    const again = await spawnTracked('curl', ['-sS', `${node.url}/poll?channel=curl1&channel=curl2&since=${body.cursor}`]).exited;
    assert.deepEqual((JSON.parse(again.stdout) as PollAnswer).messages, []);
  });

  test('a node that drains answers waiting polls with the disconnect line', async () => {
    const s = await startServer({ pollTimeoutSeconds: 30 });
    const { answer } = await startPoll(s, 'channel=d');
    const closing = s.close();
    const { body } = await answer;
    assert.deepEqual(body.messages, [['disconnect', 'shutdown', 3001, true]]);
    await closing;
  });
});

describe('/poll with credentials', () => {
  let strict: TestServer;
  before(async () => {
    strict = await startServer({ dev: false, pollTimeoutSeconds: 30 });
  });
  after(() => strict.close());

  test('tokens and sealed keys work as on /sub; a poll whose token expires while waiting ends with "expired"', async () => {
    const { signToken } = await import('../src/auth/jwt.js');
    const { sealChannel } = await import('../src/auth/sealed-key.js');
    const { TEST_SECRET } = await import('./helpers/server.js');
    assert.equal((await fetch(`${strict.url}/poll?channel=open`)).status, 401);
    const key = sealChannel('hidden', { secret: TEST_SECRET });
    const { answer } = await startPoll(strict, `key=${key}`);
    await publish(strict.url, { channel: 'hidden', data: 'k' });
    assert.deepEqual((await answer).body.messages.map((m) => m.slice(0, 3)), [['message', key, 'k']]);
    const token = await signToken({ secret: TEST_SECRET, channels: ['t'], ttlSeconds: 1 });
    const t0 = Date.now();
    const expiring = await startPoll(strict, `channel=t&token=${token}`);
    const { body } = await expiring.answer;
    assert.deepEqual(body.messages, [['disconnect', 'expired', 3003, true]]);
    assert.ok(Date.now() - t0 < 4000);
  });
});
