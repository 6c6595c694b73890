/**
 * Connect rate with credentials: how fast a node admits /sub connections that carry a token or a sealed key,
 * compared with anonymous ones. Run after `npm ci`:
 *
 *   node dist/bench/auth-connect.js [--connections 5000] [--concurrency 100]
 *
 * Phases, each on a fresh set of raw TCP connections (held until the phase ends, then closed):
 *   anonymous   channel=C (the spawned node runs --dev)
 *   same-token  token=T, one token for every client: the verification cache makes it one signature check
 *   own-token   token=Ti, a different token per client: one HS256 verification per connection
 *   same-key    key=K, one sealed key for every client
 * The node's own count of signature checks (/metrics herald_token_verifications_total) is printed per phase.
 */
import net from 'node:net';
import { parseArgs } from 'node:util';
import { signToken } from '../src/auth/jwt.js';
import { sealChannel } from '../src/auth/sealed-key.js';
import { spawnServer } from './server-process.js';

const SECRET = 'bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz';

const { values } = parseArgs({
  options: { connections: { type: 'string', default: '5000' }, concurrency: { type: 'string', default: '100' } },
});
const N = Number(values.connections);
const CONCURRENCY = Number(values.concurrency);

/** Open `queries.length` streams with at most CONCURRENCY attempts in flight; resolves with the sockets and the time. */
async function connectAll(port: number, queries: string[]): Promise<{ sockets: net.Socket[]; ms: number; failed: number }> {
  const sockets: net.Socket[] = [];
  let next = 0;
  let failed = 0;
  const start = performance.now();
  const one = (query: string): Promise<void> =>
    new Promise((resolve) => {
      const s = net.connect({ port, host: '127.0.0.1' });
      let got = '';
      s.setNoDelay(true);
      s.on('connect', () => s.write(`GET /sub?${query} HTTP/1.1\r\nHost: bench\r\n\r\n`));
      s.on('data', (d: Buffer) => {
        if (got === '') {
          got = d.toString('latin1', 0, 12);
          if (got.startsWith('HTTP/1.1 200')) sockets.push(s);
          else {
            failed++;
            s.destroy();
          }
          resolve();
        }
      });
      s.on('error', () => {
        if (got === '') {
          failed++;
          got = 'error';
          resolve();
        }
      });
    });
  const lane = async (): Promise<void> => {
    while (next < queries.length) await one(queries[next++] ?? '');
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, lane));
  return { sockets, ms: performance.now() - start, failed };
}

async function verifications(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = /^herald_token_verifications_total (\d+)/m.exec(text);
  return m ? Number(m[1]) : NaN;
}

async function main(): Promise<void> {
  const server = await spawnServer(['--secret', SECRET], []);
  const port = Number(new URL(server.url).port);
  try {
    const token = await signToken({ secret: SECRET, channels: ['bench.*'], ttlSeconds: 3600 });
    const own = await Promise.all(
      Array.from({ length: N }, (_, i) => signToken({ secret: SECRET, channels: [`bench.${i}`], subject: String(i) })),
    );
    // A second set for the second round: tokens of the first are cached by then.
    const own2 = await Promise.all(
      Array.from({ length: N }, (_, i) => signToken({ secret: SECRET, channels: [`bench.${i}`], subject: `b${i}` })),
    );
    const key = sealChannel('bench.keyed', { secret: SECRET, ttlSeconds: 3600 });
    const phases: [string, string[]][] = [
      ['anonymous', own.map((_, i) => `channel=bench.${i % 100}`)],
      ['same-token', own.map((_, i) => `token=${token}&channel=bench.${i % 100}`)],
      ['own-token', own.map((t) => `token=${t}`)],
      ['same-key', own.map(() => `key=${key}`)],
    ];
    // Warm-up (not reported): the first connections of a fresh process pay for JIT compilation.
    const warm = await connectAll(port, phases[0]?.[1] ?? []);
    for (const s of warm.sockets) s.destroy();
    await new Promise((r) => setTimeout(r, 1000));
    process.stdout.write(`connections per phase: ${N}, concurrency: ${CONCURRENCY}\n`);
    process.stdout.write('phase        connects/s   held   failed   signature checks\n');
    // Two rounds, in a different order the second time, so the machine's noise shows in the spread.
    const second = [...phases].reverse().map(([name, q]): [string, string[]] => [name, name === 'own-token' ? own2.map((t) => `token=${t}`) : q]);
    for (const [name, queries] of [...phases, ...second]) {
      const before = await verifications(server.url);
      const { sockets, ms, failed } = await connectAll(port, queries);
      const checks = (await verifications(server.url)) - before;
      const rate = Math.round((sockets.length / ms) * 1000);
      process.stdout.write(
        `${name.padEnd(12)} ${String(rate).padStart(10)}   ${String(sockets.length).padStart(4)}   ${String(failed).padStart(6)}   ${checks}\n`,
      );
      for (const s of sockets) s.destroy();
      await new Promise((r) => setTimeout(r, 1000));
    }
  } finally {
    await server.stop();
  }
  await inProcess();
}

/** The cost of one check in this process, without sockets: a signature verification, a cache hit, a key opening. */
async function inProcess(): Promise<void> {
  const { TokenVerifier } = await import('../src/auth/jwt.js');
  const { SecretRing } = await import('../src/auth/secrets.js');
  const { SealedKeyOpener } = await import('../src/auth/sealed-key.js');
  const ring = new SecretRing(SECRET);
  const n = 5000;
  const tokens = await Promise.all(Array.from({ length: n }, (_, i) => signToken({ secret: SECRET, channels: [`c${i}`] })));
  const cold = new TokenVerifier({ ring, algorithms: ['HS256'] });
  let t = performance.now();
  for (const tk of tokens) await cold.verify(tk);
  const verifyUs = ((performance.now() - t) * 1000) / n;
  t = performance.now();
  for (const tk of tokens) await cold.verify(tk);
  const hitUs = ((performance.now() - t) * 1000) / n;
  const keys = Array.from({ length: n }, (_, i) => sealChannel(`c${i}`, { secret: SECRET }));
  const opener = new SealedKeyOpener(ring, 0);
  t = performance.now();
  for (const k of keys) opener.openSync(k);
  const openUs = ((performance.now() - t) * 1000) / n;
  process.stdout.write(
    `in process: HS256 verification ${verifyUs.toFixed(1)} µs, cached token ${hitUs.toFixed(2)} µs, ` +
      `sealed key opening (uncached) ${openUs.toFixed(1)} µs\n`,
  );
}

await main();
