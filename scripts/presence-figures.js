#!/usr/bin/env node
// Presence figures for docs/benchmarks.md (run after `npm run build`, with --expose-gc):
//   node --expose-gc scripts/presence-figures.js [members=10000] [node clients=4000]
// (the node part runs clients and server in one process: two file descriptors per client)
// 1. LocalPresence alone: memory per member, joins per second, the O(1) count.
// 2. A real node (--dev, embedded broker): N ws clients on one channel (joins over real sockets), the count
//    asked through POST /api/presence_stats, and a publish's fan-out to them with presence on and off.
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { LocalPresence } from '../dist/src/presence/local-presence.js';
import { startServer, TEST_API_KEY } from '../dist/test/helpers/server.js';

const N_LOCAL = Number(process.argv[2] ?? 10_000);
const N_NODE = Number(process.argv[3] ?? 4000);
let N = N_LOCAL;
const gc = globalThis.gc ?? (() => undefined);

function local() {
  gc();
  const before = process.memoryUsage().heapUsed;
  const p = new LocalPresence();
  const t0 = performance.now();
  for (let i = 0; i < N; i++) p.add('big', { client: `abcdefg-${i.toString(36)}`, user: `user-${i % (N / 2)}`, connectedAt: 1733220000000 });
  const joinMs = performance.now() - t0;
  gc();
  const bytes = process.memoryUsage().heapUsed - before;
  const t1 = performance.now();
  let c = 0;
  for (let i = 0; i < 100_000; i++) c += p.stats('big').clients;
  const countNs = ((performance.now() - t1) * 1e6) / 100_000;
  console.log(`LocalPresence: ${N} members, ${Math.round(bytes / N)} bytes/member (member objects included), ` +
    `${Math.round(N / (joinMs / 1000))} joins/s, stats() ${countNs.toFixed(0)} ns (${c > 0 ? 'ok' : '?'})`);
}

async function node(presenceOn) {
  const n = await startServer(presenceOn ? {} : { dev: false, defaultNamespace: { anonymous: true } });
  const clients = [];
  const t0 = performance.now();
  let received = 0;
  let done;
  for (let i = 0; i < N; i += 200) {
    await Promise.all(Array.from({ length: Math.min(200, N - i) }, () => new Promise((resolve, reject) => {
      const ws = new WebSocket(`${n.url.replace('http', 'ws')}/ws?channel=big`);
      ws.on('open', () => resolve());
      ws.on('error', reject);
      ws.on('message', () => {
        if (++received === N) done?.();
      });
      clients.push(ws);
    })));
  }
  const joinS = (performance.now() - t0) / 1000;
  const members = n.server.presence.local.memberCount();
  const t1 = performance.now();
  const res = await globalThis.fetch(`${n.url}/api/presence_stats`, { method: 'POST', headers: { Authorization: `Bearer ${TEST_API_KEY}`, 'Content-Type': 'application/json' }, body: '{"channel":"big"}' });
  const statsMs = performance.now() - t1;
  const stats = presenceOn ? await res.json() : { clients: '-' };
  const fanned = new Promise((r) => (done = r));
  const t2 = performance.now();
  await globalThis.fetch(`${n.url}/api/publish`, { method: 'POST', headers: { Authorization: `Bearer ${TEST_API_KEY}`, 'Content-Type': 'application/json' }, body: '{"channel":"big","data":"x"}' });
  await fanned;
  const fanMs = performance.now() - t2;
  console.log(`node, presence ${presenceOn ? 'on ' : 'off'}: ${N} ws clients joined in ${joinS.toFixed(1)} s (${Math.round(N / joinS)}/s), ` +
    `members ${members}, presence_stats ${JSON.stringify(stats.clients)} in ${statsMs.toFixed(1)} ms, one publish reached all in ${fanMs.toFixed(0)} ms`);
  for (const ws of clients) ws.terminate();
  await n.close();
}

local();
N = N_NODE;
// Each twice, alternating, so JIT warm-up and the machine's load weigh on both alike.
for (const on of [false, true, false, true]) await node(on);
