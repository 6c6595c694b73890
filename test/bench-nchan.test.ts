/**
 * The side-by-side harness's Nchan (bench/nchan.conf, started by bench/nchan-server.ts): it starts, streams one
 * message published to it, carries a small bench run with nothing lost, and leaves no process behind. The full
 * comparison is not a test (docs/benchmarks.md has its command). Needs nginx-light + libnginx-mod-nchan (.ci/run).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import { compareChart } from '../bench/compare-chart.js';
import { compareTable, type CompareCase } from '../bench/compare.js';
import { nchanInstalled, startNchan } from '../bench/nchan-server.js';
import { parseBenchArgs } from '../bench/options.js';
import { runBench } from '../bench/run.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('the harness Nchan starts with two workers, streams a published message on /sub, and stops completely', async () => {
  assert.ok(nchanInstalled(), 'nginx with libnginx-mod-nchan is not installed (apt-get install nginx-light libnginx-mod-nchan)');
  const nchan = await startNchan();
  const pids = nchan.pids();
  try {
    assert.equal(pids.length, 3, `master and two workers: ${pids.join(' ')}`);
    const line = await new Promise<string>((resolve, reject) => {
      const req = http.get(`${nchan.url}/sub?channel=one`, (res) => {
        assert.equal(res.statusCode, 200);
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          text += d;
          if (text.includes('\n')) {
            resolve(text);
            req.destroy();
          }
        });
        // The stream is live once its head arrived: publish now.
        void fetch(`${nchan.url}/pub?channel=one`, { method: 'POST', body: 'hello nchan' }).then(async (r) => {
          await r.arrayBuffer();
          if (!r.ok) reject(new Error(`publish answered ${r.status}`));
        }, reject);
      });
      req.on('error', reject);
      setTimeout(() => reject(new Error('no message within 10 s')), 10_000).unref();
    });
    assert.equal(line, 'hello nchan\n');
  } finally {
    await nchan.stop();
  }
  for (const pid of pids) assert.equal(alive(pid), false, `nginx process ${pid} still running`);
});

test('a small bench run against the harness Nchan loses nothing on /sub, /sse and /ws, and the table and chart show it', async () => {
  const cases: CompareCase[] = [];
  for (const transport of ['sub', 'sse', 'ws'] as const) {
    const nchan = await startNchan();
    try {
      const o = parseBenchArgs(['--url', nchan.url, '-n', '20', '--channels', '2', '--transport', transport,
        '--rate', '20', '--duration', '1', '--settle', '0', '--drain', '10', '--quiet']);
      o.target = 'nchan';
      o.serverPids = nchan.pids();
      const r = await runBench(o, () => undefined, new AbortController().signal);
      assert.equal(r.connections.held, 20, `${transport}: ${JSON.stringify(r.connections.errors)}`);
      const step = r.steps[0]!;
      assert.equal(step.published.ok, 20, `${transport}: every publish accepted`);
      assert.equal(step.deliveries.received, 20 * 10, `${transport}: each message reaches the 10 subscribers of its channel`);
      assert.equal(step.deliveries.duplicates, 0);
      assert.ok(step.cpuPercent.server !== undefined, 'server CPU measured over nginx processes');
      cases.push({ server: 'nchan', scenario: 'fanout', transport, connections: 20, result: r });
    } finally {
      await nchan.stop();
    }
  }
  const md = compareTable(cases, { startedAt: 'now', scale: 'small', argv: ['--compare'] });
  assert.match(md, /\| fanout \/ws 20 \| \*\*20 msg\/s\*\* held/);
  const svg = compareChart(cases, 'test');
  assert.match(svg, /^<svg /);
  assert.match(svg, /nchan: 20 msg\/s/);
});
