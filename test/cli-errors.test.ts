/**
 * One-line errors at start, through the real binary: a busy port stops `herald serve` with one line naming the
 * address; a broker that cannot be reached is one log line with the cause (refused, host not found, auth failed,
 * timeout, TLS) while the node starts not ready and keeps trying; `herald publish --broker` exits 1 with that cause.
 * The dev banner names the broker in use, without its password.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, test } from 'node:test';
import { cleanEnv, killAll, runHerald, startHerald, type RunningHerald } from './helpers/cli.js';
import { freePort, startRedis, type RedisProcess } from './helpers/redis.js';

const servers: Server[] = [];
const redises: RedisProcess[] = [];
after(async () => {
  await killAll();
  for (const s of servers) s.close();
  await Promise.all(redises.map((r) => r.stop()));
});

/** A TCP server on a free loopback port: `silent` accepts and never answers (a stalled Redis, a black hole). */
async function tcpServer(): Promise<number> {
  const server = createServer(() => undefined);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address && typeof address === 'object');
  return address.port;
}

/** Wait for the whole dev banner (the "herald listening" log line, which startHerald may have seen, comes first). */
async function banner(node: RunningHerald): Promise<string> {
  const deadline = Date.now() + 10_000;
  while (!node.stdout().includes('Admin dashboard:')) {
    if (Date.now() > deadline) throw new Error(`no banner: ${node.stdout()} ${node.stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return node.stdout();
}

const noStack = (text: string): void => assert.doesNotMatch(text, /\n\s+at |Error: .*\n/, `no stack trace: ${text}`);

test('a busy port: one line naming the address and why, exit 1', async () => {
  const port = await tcpServer();
  const r = await runHerald(['serve', '--dev', '--port', String(port)]);
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.trimEnd().split('\n').filter((l) => !l.startsWith('{'));
  assert.deepEqual(lines, [
    `herald: cannot listen on 127.0.0.1:${port}: address already in use (another process listens there: stop it or pick another --port) (EADDRINUSE)`,
  ]);
  noStack(r.stderr);
});

test('a broker that cannot be reached at start: one warn line with the cause; the node starts not ready', async (t) => {
  const redis = await startRedis();
  redises.push(redis);
  redis.cli('CONFIG', 'SET', 'requirepass', 'the-right-password-0123');
  const refused = await freePort();
  const silent = await tcpServer();
  const plain = await startRedis();
  redises.push(plain);
  const cases: [string, string, RegExp][] = [
    ['a refused port', `redis://127.0.0.1:${refused}`, new RegExp(`^connection refused \\(127\\.0\\.0\\.1:${refused}\\)$`)],
    ['an unresolvable host', 'redis://no-such-host.invalid:6379', /^host not found \(no-such-host\.invalid\): (ENOTFOUND|EAI_AGAIN)$/],
    ['a wrong password', `redis://:wrong-password@127.0.0.1:${redis.port}`, /^auth failed: WRONGPASS /],
    ['no password where one is required', redis.url, /^auth failed: NOAUTH /],
    ['a server that never answers', `redis://127.0.0.1:${silent}`, /^timed out/],
    ['TLS asked of a port without it', `rediss://127.0.0.1:${plain.port}`, /^timed out: .*\(rediss:\/\/ is TLS: does this port speak TLS\?\)$/],
  ];
  await Promise.all(
    cases.map(([name, broker, cause]) =>
      t.test(name, async () => {
        const node = await startHerald(['--dev', '--port', '0', '--broker', broker, '--redis-timeout-ms', '500']);
        const stdout = await banner(node);
        const ready = await fetch(`${node.url}/readyz`);
        await ready.body?.cancel();
        assert.equal(ready.status, 503, 'up, not ready');
        node.proc.kill('SIGTERM');
        const { stderr } = await node.exited;
        const line = stderr.split('\n').find((l) => l.includes('redis unavailable, retrying'));
        assert.ok(line, stderr);
        const fields = JSON.parse(line) as { cause: string; server: string };
        assert.match(fields.cause, cause);
        assert.ok(!line.includes('wrong-password'), 'no password in the log');
        assert.equal(fields.server, broker.replace(/\/\/[^@]*@/, '//'));
        assert.match(stdout, new RegExp(`\\(broker ${fields.server.replace(/[.]/g, '\\.')}, `), 'the banner names the broker in use');
        noStack(stderr);
      }),
    ),
  );
});

test('herald publish --broker: exit 1 with one line and the cause', async () => {
  const refused = await freePort();
  const [standalone, cluster] = await Promise.all([
    runHerald(['publish', 'abc', '1', '--broker', `redis://:pw-not-shown@127.0.0.1:${refused}`], cleanEnv({ HERALD_REDIS_TIMEOUT_MS: '500' })),
    runHerald(['publish', 'abc', '1', '--broker', `redis-cluster://127.0.0.1:${refused}`], cleanEnv({ HERALD_REDIS_TIMEOUT_MS: '500' })),
  ]);
  assert.equal(standalone.code, 1);
  assert.equal(standalone.stderr, `herald publish: cannot reach redis://127.0.0.1:${refused}: connection refused (127.0.0.1:${refused})\n`);
  assert.equal(cluster.code, 1);
  assert.equal(cluster.stderr, `herald publish: cannot reach redis-cluster://127.0.0.1:${refused}: 127.0.0.1:${refused}: connection refused (127.0.0.1:${refused})\n`);
});

test('the dev banner names the Redis broker in use, without its password', async () => {
  const redis = await startRedis();
  redises.push(redis);
  const node = await startHerald(['--dev', '--port', '0', '--broker', `redis://:unused-password@127.0.0.1:${redis.port}`]);
  const stdout = await banner(node);
  node.proc.kill('SIGTERM');
  await node.exited;
  assert.match(stdout, new RegExp(`development mode at \\S+ \\(broker redis://127\\.0\\.0\\.1:${redis.port}, anonymous`));
  assert.ok(!stdout.includes('unused-password'));
});

test('the dev banner prints the admin dashboard URL, which serves the dashboard (on the internal port when set)', async () => {
  const node = await startHerald(['--dev', '--port', '0']);
  const stdout = await banner(node);
  const url = /Admin dashboard: (\S+)/.exec(stdout)?.[1];
  assert.ok(url, stdout);
  const page = await fetch(url);
  assert.equal(page.status, 200, url);
  assert.match(await page.text(), /<html/i);
  node.proc.kill('SIGTERM');
  await node.exited;
  const internal = await freePort();
  const split = await startHerald(['--dev', '--port', '0', '--internal-port', String(internal)]);
  const out = await banner(split);
  assert.match(out, new RegExp(`Admin dashboard: http://127\\.0\\.0\\.1:${internal}/admin\n`), out);
  const there = await fetch(`http://127.0.0.1:${internal}/admin`);
  assert.equal(there.status, 200);
  split.proc.kill('SIGTERM');
  await split.exited;
});
