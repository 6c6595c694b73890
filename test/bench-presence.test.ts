/**
 * `herald bench presence` end to end at a small N: its own redis-server and Herald, real /sub members, the API's
 * presence calls, fan-out on a presence channel and a plain one; both processes stopped at the end. The figures
 * are for docs/benchmarks.md; here only their consistency is checked.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runHerald } from './helpers/cli.js';

test('bench presence: members counted and listed on Redis, fan-out measured with presence on and off, servers stopped', async () => {
  const r = await runHerald(['bench', 'presence', '-n', '60', '--fanout-subscribers', '20', '--messages', '5', '--rounds', '1',
    '--count-queries', '5', '--json'], undefined, 120_000);
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout) as {
    server: string;
    members: number;
    joinsPerSecond: number;
    redisBytesPerMember: number;
    presenceStatsMs: { p50: number; p99: number };
    presenceListMs: { listed: number };
    fanOut: { rounds: { presence: string; deliveriesPerSecond: number }[] };
  };
  assert.equal(result.members, 60);
  assert.equal(result.presenceListMs.listed, 60, 'the listing has every member');
  assert.ok(result.joinsPerSecond > 0 && result.presenceStatsMs.p50 > 0);
  assert.ok(result.redisBytesPerMember > 0, 'the members are on Redis');
  assert.deepEqual(result.fanOut.rounds.map((x) => x.presence), ['off', 'on']);
  assert.ok(result.fanOut.rounds.every((x) => x.deliveriesPerSecond > 0));
  const port = /--port (\d+)/.exec(result.server)?.[1];
  await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`), 'the bench stopped its server');
});

test('bench presence: bad options exit 2 with the usage', async () => {
  const r = await runHerald(['bench', 'presence', '--members', '0']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--members/);
  assert.match(r.stderr, /usage: herald bench presence/);
});
