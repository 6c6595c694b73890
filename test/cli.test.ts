/**
 * The `herald` command as users run it: child processes, curl, npx. Every process started here is killed in the
 * `after` hook, even when a test fails.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { cleanEnv, killAll, runHerald, spawnTracked, startHerald, type Spawned } from './helpers/cli.js';
import { openStream, TEST_SECRET } from './helpers/server.js';

after(killAll);

/** Wait until a spawned process has printed `text` on stdout. */
async function printed(p: Spawned, text: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!p.stdout().includes(text)) {
    if (Date.now() > deadline) throw new Error(`never printed ${JSON.stringify(text)}; stdout: ${p.stdout()}; stderr: ${p.stderr()}`);
    if (p.proc.exitCode !== null) throw new Error(`exited ${p.proc.exitCode} before printing ${JSON.stringify(text)}: ${p.stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `curl -N URL`, started once the stream is live (curl prints nothing before the first line, so ask the node). */
function curl(url: string): Spawned {
  return spawnTracked('curl', ['-sS', '-N', url]);
}

/** The node's open stream count, from its /metrics. */
async function sessions(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return Number(/^herald_sessions (\d+)$/m.exec(text)?.[1] ?? NaN);
}

async function untilSessions(base: string, n: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await sessions(base)) !== n) {
    if (Date.now() > deadline) throw new Error(`never reached ${n} sessions`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * The seed's test: two curl streams, `npx herald publish abc 123`, the exact lines. `env` picks the node's settings.
 */
async function seedTest(env: Record<string, string>): Promise<void> {
  // No heartbeat (an empty line every 25 s) within the test: on a loaded machine it can outlast 25 s.
  const node = await startHerald(['--dev', '--port', '0', '--heartbeat-seconds', '3600'], cleanEnv(env));
  const port = new URL(node.url).port;
  const base = `http://localhost:${port}`;

  const one = curl(`${base}/sub?channel=abc`);
  await untilSessions(node.url, 1);
  const two = curl(`${base}/sub?channel=abc&channel=def`);
  await untilSessions(node.url, 2);

  const published = await runHerald(['publish', 'abc', '123', '--server', base], cleanEnv(), 30_000);
  assert.equal(published.code, 0, published.stderr);
  // Through npx too, as the README says it (npm resolves the checkout's own `bin`).
  const npx = spawnTracked('npx', ['--no-install', 'herald', 'publish', 'def', '456', '--server', base]);
  const viaNpx = await npx.exited;
  assert.equal(viaNpx.code, 0, `npx herald publish: ${viaNpx.stderr}`);

  try {
    await printed(two, '\n', 5000);
    await printed(one, '\n', 5000);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(one.stdout(), '["message","abc","123"]\n', 'the first stream: abc, word for word');
    assert.equal(two.stdout(), '["message","abc","123"]\n["message","def","456"]\n', 'the second stream: both channels');
  } finally {
    one.proc.kill('SIGTERM');
    two.proc.kill('SIGTERM');
    await Promise.all([one.exited, two.exited]);
  }
  await untilSessions(node.url, 0);
  node.proc.kill('SIGTERM');
  assert.equal((await node.exited).code, 0);
}

// History is on by default, but /sub lines carry the id only when the client asks for it with since=.
test("the seed's test, word for word, on `herald serve --dev` as it starts", () => seedTest({}));

test("the seed's test, word for word, on a node without history", () => seedTest({ HERALD_HISTORY_SIZE: '0' }));

// INTERFACE.md: in --dev a key= that is not a sealed key is a plain channel name, so the seed's own command works.
for (const [name, env] of [
  ['without a secret', {}],
  ['with a secret (a key that does not open is a plain name)', { HERALD_SECRET: TEST_SECRET }],
] as const) {
  test(`the seed's \`curl http://localhost:8080/sub?key=abc -v\` on --dev, ${name}`, async () => {
    const node = await startHerald(['--dev', '--port', '0', '--heartbeat-seconds', '3600'], cleanEnv(env));
    const base = `http://localhost:${new URL(node.url).port}`;
    // -N: curl buffers its output when it is not a terminal (the seed ran it in one).
    const stream = spawnTracked('curl', ['-N', `${base}/sub?key=abc`, '-v']);
    await untilSessions(node.url, 1);
    const published = await runHerald(['publish', 'abc', '123', '--server', base], cleanEnv(), 30_000);
    assert.equal(published.code, 0, published.stderr);
    try {
      await printed(stream, '\n', 5000);
      assert.equal(stream.stdout(), '["message","abc","123"]\n');
    } finally {
      stream.proc.kill('SIGTERM');
      await stream.exited;
    }
    node.proc.kill('SIGTERM');
    assert.equal((await node.exited).code, 0);
  });
}

test('outside --dev a key= that is not a sealed key is 401, never a channel name', async () => {
  const node = await startHerald(['--port', '0', '--host', '127.0.0.1'], cleanEnv({ HERALD_SECRET: TEST_SECRET }));
  const res = await fetch(`${node.url}/sub?key=abc`);
  assert.equal(res.status, 401);
  await res.body?.cancel();
  node.proc.kill('SIGTERM');
  await node.exited;
});

test('--dev prints a curl command and a publish command that work as printed', async () => {
  const node = await startHerald(['--dev', '--port', '0']);
  await printed(node, "-d '{\"channel\":\"abc\",\"data\":\"123\"}'");
  const out = node.stdout();
  const subscribe = /curl -N '([^']+)'/.exec(out)?.[1];
  const publishLine = /npx herald publish abc 123 --server (\S+)/.exec(out)?.[1];
  assert.ok(subscribe, out);
  assert.ok(publishLine, out);
  const stream = curl(subscribe);
  await untilSessions(node.url, 1);
  const r = await runHerald(['publish', 'abc', '123', '--server', publishLine]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^\{"id":/);
  await printed(stream, '\n');
  // The seed's line: ids are for clients that resume (since=).
  assert.equal(stream.stdout(), '["message","abc","123"]\n');
  stream.proc.kill('SIGTERM');
  node.proc.kill('SIGTERM');
  assert.equal((await node.exited).code, 0);
});

test('SIGTERM drains: every stream gets a last "reconnect elsewhere" line, and the process exits 0', async () => {
  const node = await startHerald(['--dev', '--port', '0'], cleanEnv({ HERALD_DRAIN_TIMEOUT_MS: '3000' }));
  const sub = await openStream(`${node.url}/sub?channel=a&channel=b`);
  const plain = spawnTracked('curl', ['-sS', '-N', '--http1.0', `${node.url}/sub?channel=a`]);
  const sse = await openStream(`${node.url}/sse?channel=a`);
  await untilSessions(node.url, 3);
  const started = Date.now();
  node.proc.kill('SIGTERM');

  assert.deepEqual(await sub.waitLines(1), ['["disconnect","shutdown",3001,true]']);
  await sub.ended;
  await sse.ended;
  // Other events (a resume position) may come first: the last event is the disconnect.
  assert.deepEqual(sse.lines.slice(-3), ['event: disconnect', 'data: ["disconnect","shutdown",3001,true]', '']);
  const curlDone = await plain.exited;
  assert.equal(curlDone.stdout, '["disconnect","shutdown",3001,true]\n');
  assert.equal(curlDone.code, 0, `curl: ${curlDone.stderr}`);

  const exit = await node.exited;
  assert.equal(exit.code, 0, exit.stderr);
  assert.ok(Date.now() - started < 3000 + 2000, 'exited within the drain timeout');
  assert.match(exit.stderr, /"msg":"draining","signal":"SIGTERM"/);
});

test('herald publish: an unreachable server exits 1 with one line; a refused publish exits 1 with the answer', async () => {
  const node = await startHerald(['--port', '0', '--host', '127.0.0.1'], cleanEnv({ HERALD_SECRET: 'k3J9-xQ2m_Lp8vR4tW7yZ1aB5cD0eF6gH', HERALD_API_KEYS: 'right-key' }));
  const refused = await runHerald(['publish', 'abc', '1', '--server', node.url, '--api-key', 'wrong']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /401/);
  const ok = await runHerald(['publish', 'abc', '1', '--server', node.url], cleanEnv({ HERALD_API_KEY: 'right-key' }));
  assert.equal(ok.code, 0, ok.stderr);
  node.proc.kill('SIGTERM');
  assert.equal((await node.exited).code, 0);
  const down = await runHerald(['publish', 'abc', '1', '--server', node.url]);
  assert.equal(down.code, 1);
  assert.equal(down.stderr.trimEnd().split('\n').length, 1, down.stderr);
  assert.match(down.stderr, /cannot reach/);
});
