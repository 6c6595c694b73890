/**
 * Server memory per held connection, by transport, measured inside the server process so that other load on the
 * machine does not blur it: a node runs here, a child process (this file again, as `client`) holds N connections,
 * and the JS heap and RSS are compared after full GCs before and after.
 *
 *   npm run build && node --expose-gc dist/bench/transport-memory.js sub|sse|ws|pusher [N=3000]
 */
import { fork } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { resolveConfig } from '../src/config.js';
import { createHeraldServer } from '../src/server.js';

const CHANNELS = 100;
const gc = (globalThis as { gc?: () => void }).gc;

async function settled(): Promise<NodeJS.MemoryUsage> {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 200));
  }
  return process.memoryUsage();
}

/** The child: hold `n` connections of `transport` to `url`, say "held", exit when told. */
async function client(url: string, transport: string, n: number): Promise<void> {
  const u = new URL(url);
  const keep: unknown[] = [];
  let held = 0;
  const one = (): void => {
    if (++held === n) process.send?.('held');
  };
  for (let i = 0; i < n; i++) {
    const channel = `c${i % CHANNELS}`;
    if (transport === 'pusher') {
      // The --dev app; held once its channel is subscribed.
      const ws = new WebSocket(`ws://${u.host}/app/app-key?protocol=7`);
      ws.once('open', () => ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel } })));
      ws.on('message', (m) => {
        if (String(m).startsWith('{"event":"pusher_internal:subscription_succeeded"')) one();
      });
      keep.push(ws);
    } else if (transport === 'ws') {
      const ws = new WebSocket(`ws://${u.host}/ws?channel=${channel}`);
      ws.once('open', one);
      keep.push(ws);
    } else {
      const s = net.connect(Number(u.port), u.hostname, () => s.write(`GET /${transport}?channel=${channel} HTTP/1.1\r\nHost: ${u.host}\r\n\r\n`));
      s.once('data', one);
      keep.push(s);
    }
    if (i % 200 === 199) await new Promise((r) => setTimeout(r, 20));
  }
  process.on('message', () => process.exit(0));
}

async function main(): Promise<void> {
  const [transport = 'sub', arg, url] = process.argv.slice(2);
  if (transport === 'client') return client(url ?? '', arg ?? 'sub', Number(process.argv[5]));
  if (!gc) throw new Error('run with node --expose-gc');
  const n = Number(arg ?? 3000);
  const server = createHeraldServer(resolveConfig({ overrides: { port: 0, host: '127.0.0.1', dev: true, logLevel: 'silent' } }));
  await server.listen();
  const before = await settled();
  const child = fork(fileURLToPath(import.meta.url), ['client', transport, server.url, String(n)]);
  await new Promise((r) => child.once('message', r));
  const after = await settled();
  const per = (a: number, b: number): string => `${((b - a) / n / 1024).toFixed(2)} KB`;
  process.stdout.write(
    `${transport}: ${n} connections held; per connection: JS heap ${per(before.heapUsed, after.heapUsed)}, ` +
      `RSS ${per(before.rss, after.rss)} (sessions ${server.node.sessionCount()})\n`,
  );
  child.send('bye');
  await server.close();
  process.exit(0);
}

await main();
