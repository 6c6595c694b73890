/**
 * A Herald node killed with SIGKILL (a child process running `herald serve`) while a publisher keeps going through
 * another node: its clients notice the stream end, reconnect to the other node with their last message id
 * (`since=`), and miss nothing: every acknowledged message once, in order, with no reload needed.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { cleanEnv, killAll, startHerald } from './helpers/cli.js';
import { startNodeOnRedis, startRedis, type RedisProcess } from './helpers/redis.js';
import { eventually, openStream, publish, type LineStream } from './helpers/server.js';

let redis: RedisProcess;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await killAll();
  await redis?.stop();
});

type Line = [string, ...unknown[]];
const parsed = (s: LineStream): Line[] => s.lines.filter((l) => l.length > 0).map((l) => JSON.parse(l) as Line);
const dataOf = (lines: Line[]): string[] => lines.filter((l) => l[0] === 'message').map((l) => String(l[2]));

/** Publishes m0, m1, ... through `url` until stopped; remembers which were acknowledged (200). */
function startPublisher(url: string, channel: string): { acked: string[]; stop(): Promise<void> } {
  const acked: string[] = [];
  let running = true;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const res = await publish(url, { channel, data: `m${i}` }).catch(() => ({ status: 0 }));
      if (res.status === 200) acked.push(`m${i}`);
      await new Promise((r) => setTimeout(r, 15));
    }
  })();
  return {
    acked,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

test('clients of a SIGKILLed node resume on another node from their last id and miss nothing', async () => {
  const survivor = await startNodeOnRedis(redis.url, { historySize: 100 });
  try {
    const victim = await startHerald(['--port', '0', '--dev', '--broker', redis.url], cleanEnv());
    const pub = startPublisher(survivor.url, 'news');
    // Clients as an SDK behaves: remember the last id; on stream end, reconnect elsewhere with since=<last id>.
    const clients = await Promise.all(
      Array.from({ length: 10 }, async () => {
        const first = await openStream(`${victim.url}/sub?channel=news&since=`);
        assert.equal(first.status, 200);
        const second = first.ended.then(() => {
          const withIds = parsed(first).filter((l) => ['message', 'position', 'reload'].includes(l[0]));
          const lastId = String(withIds[withIds.length - 1]?.at(-1) ?? '');
          return openStream(`${survivor.url}/sub?channel=news&since=${encodeURIComponent(lastId)}`);
        });
        return { first, second };
      }),
    );
    await eventually(() => pub.acked.length >= 10, 10_000, 'publishing');
    victim.proc.kill('SIGKILL');
    assert.equal((await victim.exited).signal, 'SIGKILL');
    const seconds = await Promise.all(clients.map((c) => c.second));
    const resumedAt = pub.acked.length;
    await eventually(() => pub.acked.length >= resumedAt + 10, 10_000, 'publishing after the kill');
    await pub.stop();
    assert.equal(survivor.server.node.sessionCount(), 10, 'every client now on the survivor');
    const last = pub.acked[pub.acked.length - 1] ?? '';
    for (const [i, c] of clients.entries()) {
      const second = seconds[i] as LineStream;
      assert.equal(second.status, 200);
      await eventually(() => dataOf(parsed(second)).includes(last), 10_000, 'last message after resume');
      const lines = [...parsed(c.first), ...parsed(second)];
      const got = dataOf(lines);
      const from = pub.acked.indexOf(got[0] ?? '');
      assert.ok(from >= 0);
      // From the first message it saw on: every acknowledged message, once, in order.
      assert.deepEqual(got, pub.acked.slice(from), 'nothing lost, nothing repeated');
      assert.ok(!lines.some((l) => l[0] === 'reload'), 'no reload needed: the messages were in history');
      second.close();
    }
  } finally {
    await survivor.close();
  }
});
