/**
 * deploy/nginx/herald.conf, the nginx of deploy/compose.yaml, checked with the real nginx (Debian's, which .ci/run
 * installs): `nginx -t` accepts it, and with its upstreams pointed at two Herald nodes on one Redis (compose's
 * topology, on loopback ports) a publish made through nginx reaches a /sub stream, an SSE stream and a WebSocket,
 * all opened through nginx, while they stay open: nothing is buffered, the upgrade passes.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { killAll, ROOT, startHerald, type RunningHerald } from '../helpers/cli.js';
import { freePort, startRedis, type RedisProcess } from '../helpers/redis.js';

const run = promisify(execFile);
const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));
const NO_NGINX = NGINX ? undefined : 'no nginx (apt-get install nginx-light; .ci/run does)';
if (NO_NGINX && process.env['CI']) throw new Error(NO_NGINX);
const CONF = readFileSync(join(ROOT, 'deploy', 'nginx', 'herald.conf'), 'utf8');

let work = '';
let redis: RedisProcess | undefined;
const nodes: RunningHerald[] = [];
let nginx: ChildProcess | undefined;
let front = '';

/** The compose file's config with loopback addresses in place of compose's service names and port 80. */
function localConf(upstreams: string[], listenPort: number): string {
  const conf = CONF.replace('server herald1:8080', `server ${upstreams[0]}`)
    .replace('server herald2:8080', `server ${upstreams[1]}`)
    .replace('listen 80;', `listen 127.0.0.1:${listenPort};`);
  assert.ok(!conf.includes('herald1:') && !conf.includes('herald2:') && !conf.includes('listen 80;'), 'the config changed shape: update this test');
  return conf;
}

/** A minimal main config around it, everything inside the test's directory; one process (no workers to own files). */
function mainConf(dir: string): string {
  return `daemon off; master_process off; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 256; }
http { access_log off; client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi;
       uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi; include ${dir}/herald.conf; }
`;
}

before(async () => {
  if (NO_NGINX) return;
  work = await mkdtemp(join(tmpdir(), 'herald-nginx-'));
  redis = await startRedis();
  for (let i = 0; i < 2; i++) nodes.push(await startHerald(['--dev', '--port', '0', '--broker', redis.url, '--trusted-proxies', '127.0.0.1']));
  const port = await freePort();
  await writeFile(join(work, 'herald.conf'), localConf(nodes.map((n) => new URL(n.url).host), port));
  await writeFile(join(work, 'nginx.conf'), mainConf(work));
  await mkdir(join(work, 'logs'));
  front = `http://127.0.0.1:${port}`;
});

after(async () => {
  nginx?.kill('SIGKILL');
  await killAll();
  await redis?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

test('nginx -t accepts deploy/nginx/herald.conf', { skip: NO_NGINX }, async () => {
  const { stderr } = await run(NGINX!, ['-p', work, '-c', join(work, 'nginx.conf'), '-t']);
  assert.match(stderr, /syntax is ok/);
  assert.match(stderr, /test is successful/);
});

test('through nginx, one publish reaches /sub, /sse and /ws streams spread over two nodes while they are open', { skip: NO_NGINX }, async () => {
  nginx = spawn(NGINX!, ['-p', work, '-c', join(work, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let nginxErr = '';
  nginx.stderr?.setEncoding('utf8').on('data', (d: string) => (nginxErr += d));
  // Until nginx answers (it proxies /healthz to a node).
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await fetch(`${front}/healthz`).then((r) => r.status === 200, () => false);
    if (ok) break;
    assert.ok(Date.now() < deadline, `nginx did not come up: ${nginxErr}`);
    await new Promise((r) => setTimeout(r, 50));
  }

  // Each stream is opened once the one before it is established, so least_conn puts them on both nodes.
  const ac = new AbortController();
  const sub = await fetch(`${front}/sub?channel=front`, { signal: ac.signal });
  assert.equal(sub.status, 200);
  const sse = await fetch(`${front}/sse?channel=front`, { signal: ac.signal, headers: { Accept: 'text/event-stream' } });
  assert.equal(sse.status, 200);
  const ws = new WebSocket(`${front.replace('http', 'ws')}/ws?channel=front`);
  const wsGot: string[] = [];
  ws.on('message', (m: Buffer) => wsGot.push(m.toString('utf8')));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  try {
    const sessions = async (n: RunningHerald): Promise<number> =>
      Number(/^herald_sessions (\d+)/m.exec(await (await fetch(`${n.url}/metrics`)).text())?.[1]);
    const counts = await Promise.all(nodes.map(sessions));
    assert.equal(counts[0]! + counts[1]!, 3, `sessions per node: ${counts.join(', ')}`);
    assert.ok(counts[0]! >= 1 && counts[1]! >= 1, `least_conn left a node empty: ${counts.join(', ')}`);

    const res = await fetch(`${front}/api/publish`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ channel: 'front', data: 'via nginx' }),
    });
    assert.equal(res.status, 200, await res.text());

    // The streams are read while still open: a buffering proxy would hold these bytes back.
    const [subText, sseText] = await Promise.all([readUntil(sub, 'via nginx'), readUntil(sse, 'via nginx')]);
    assert.ok(subText.split('\n').includes('["message","front","via nginx"]'), subText);
    assert.match(sseText, /^data: .*via nginx/m);
    const wsDeadline = Date.now() + 5000;
    while (!wsGot.some((m) => m.includes('via nginx'))) {
      assert.ok(Date.now() < wsDeadline, `no message on /ws: ${wsGot.join(' | ')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    ws.close();
    ac.abort();
  }
});

async function readUntil(res: Response, needle: string, timeoutMs = 5000): Promise<string> {
  const reader = res.body!.getReader();
  let text = '';
  const timer = setTimeout(() => void reader.cancel(), timeoutMs);
  try {
    while (!text.includes(needle)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString('utf8');
    }
  } finally {
    clearTimeout(timer);
  }
  assert.ok(text.includes(needle), `stream ended or timed out without ${JSON.stringify(needle)}: ${JSON.stringify(text)}`);
  return text;
}

test("docs/deployment.md's nginx block says what deploy/nginx/herald.conf does", () => {
  const doc = readFileSync(join(ROOT, 'docs', 'deployment.md'), 'utf8');
  const block = /```nginx\n([\s\S]*?)```/.exec(doc)?.[1] ?? '';
  const directives = (text: string): string[] =>
    text
      .split('\n')
      .map((l) => l.replace(/#.*/, '').trim())
      .filter((l) => /^(proxy_|gzip|client_max_body_size|least_conn|keepalive|map|default|'')/.test(l));
  assert.ok(directives(block).length > 10, 'no nginx block in docs/deployment.md');
  assert.deepEqual(directives(CONF), directives(block));
});
