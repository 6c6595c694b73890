/**
 * A Herald node killed with SIGKILL (a child process running `herald serve`): its clients notice the stream end and
 * reconnect to another node on the same Redis, where they receive what is published next.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { cleanEnv, killAll, startHerald } from './helpers/cli.js';
import { startNodeOnRedis, startRedis, type RedisProcess } from './helpers/redis.js';
import { openStream, type LineStream, type TestServer } from './helpers/server.js';

let redis: RedisProcess;
let survivor: TestServer;

before(async () => {
  redis = await startRedis();
  survivor = await startNodeOnRedis(redis.url);
});
after(async () => {
  await killAll();
  await survivor?.close();
  await redis?.stop();
});

/** A client as an SDK would behave: on stream end, reconnect to the next node in its list. */
async function reconnecting(urls: readonly string[], path: string): Promise<{ current(): LineStream; reconnected: Promise<LineStream> }> {
  let stream = await openStream(`${urls[0]}${path}`);
  const reconnected = stream.ended.then(async () => {
    stream = await openStream(`${urls[1]}${path}`);
    return stream;
  });
  return { current: () => stream, reconnected };
}

test('clients of a SIGKILLed node reconnect to another node and receive what is published next', async () => {
  const victim = await startHerald(['--port', '0', '--dev', '--broker', redis.url], cleanEnv());
  const clients = await Promise.all(
    Array.from({ length: 20 }, () => reconnecting([victim.url, survivor.url], '/sub?channel=feed')),
  );
  redis.cli('PUBLISH', 'feed', 'before');
  for (const c of clients) assert.deepEqual(await c.current().waitLines(1), ['["message","feed","before"]']);

  victim.proc.kill('SIGKILL');
  const exit = await victim.exited;
  assert.equal(exit.signal, 'SIGKILL');
  const streams = await Promise.all(clients.map((c) => c.reconnected));
  for (const s of streams) assert.equal(s.status, 200);

  redis.cli('PUBLISH', 'feed', 'after');
  for (const s of streams) assert.deepEqual(await s.waitLines(1), ['["message","feed","after"]']);
  assert.equal(survivor.server.node.sessionCount(), 20);
  for (const s of streams) s.close();
});
