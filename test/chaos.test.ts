/**
 * The chaos suite's command (chaos/run.ts) stays runnable: usage errors exit 2, a tiny worker-kill (a worker of
 * `herald serve --workers 3` SIGKILLed: nothing lost, the worker restarted), and a tiny redis-kill (25 subscribers over every transport, Redis down 2 s) passes its
 * own checks and leaves no process behind. The real runs are minutes long and not part of `npm test`
 * (docs/reliability.md "Chaos suite").
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cleanEnv, killAll, spawnTracked } from './helpers/cli.js';

const RUN = fileURLToPath(new URL('../chaos/run.js', import.meta.url));
after(killAll);

async function chaos(args: string[], timeoutMs = 20_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawnTracked(process.execPath, [RUN, ...args], cleanEnv());
  const timer = setTimeout(() => child.proc.kill('SIGINT'), timeoutMs);
  try {
    return await child.exited;
  } finally {
    clearTimeout(timer);
  }
}

test('chaos: no scenario or an unknown one is a usage error (exit 2); --help exits 0', async () => {
  const none = await chaos([]);
  assert.equal(none.code, 2);
  assert.match(none.stdout, /usage: npm run chaos -- SCENARIO/);
  assert.equal((await chaos(['nope'])).code, 2);
  assert.equal((await chaos(['--help'])).code, 0);
  const bad = await chaos(['redis-kill', '--subscribers', 'many']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--subscribers: not a positive integer/);
});

test('chaos worker-kill at a tiny scale: a SIGKILLed worker\'s clients resume on the others, nothing lost', { timeout: 150_000 }, async () => {
  // Every transport, /poll too: a poll client makes many fresh connections, so it is the one that met a connection
  // handed to the dying worker (src/cluster/handoff-guard.ts).
  const r = await chaos(['worker-kill', '--subscribers', '25', '--duration', '8s', '--rate', '50', '--json'], 140_000);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  const out = JSON.parse(r.stdout) as { ok: boolean; kinds: Record<string, { clients: number; delivered: number; lost: number }>; failures: string[] };
  assert.ok(out.ok, out.failures.join('; '));
  for (const [kind, k] of Object.entries(out.kinds)) {
    assert.ok(k.delivered > 0, `${kind} delivered messages`);
    assert.equal(k.lost, 0, kind);
  }
});

test('chaos redis-kill at a tiny scale: every check holds and every count returns to zero', { timeout: 150_000 }, async () => {
  const r = await chaos(['redis-kill', '--subscribers', '25', '--duration', '8s', '--outage', '2s', '--rate', '50', '--json'], 140_000);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  const out = JSON.parse(r.stdout) as { ok: boolean; kinds: Record<string, { clients: number; delivered: number; lost: number }>; failures: string[] };
  assert.ok(out.ok, out.failures.join('; '));
  assert.deepEqual(Object.keys(out.kinds).sort(), ['poll', 'sdk', 'sse', 'sub', 'ws']);
  for (const [kind, k] of Object.entries(out.kinds)) {
    assert.equal(k.clients, 5, kind);
    assert.ok(k.delivered > 0, `${kind} delivered messages`);
    assert.equal(k.lost, 0, kind);
  }
});
