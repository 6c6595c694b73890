/**
 * The attacker of finding 2 (issue 15), run as its own process so that its CPU does not count against the node's
 * event loop in the test's latency figures:
 *
 *   node dist/test/helpers/token-flood.js connect WS_URL COUNT LENGTH [SOCKETS] [WINDOW]
 *   node dist/test/helpers/token-flood.js url HTTP_URL COUNT LENGTH [LANES]
 *
 * `connect` sends COUNT `connect` requests to WS_URL (`ws://host:port/ws`), each with a different refused token of
 * exactly LENGTH characters (JWT-looking, differing only in their last characters), over SOCKETS WebSockets with at
 * most WINDOW waiting on each. `url` sends COUNT requests with such tokens in turn as `/ws?token=` upgrades,
 * `/sub?token=` and `/sub` with `Authorization: Bearer`, LANES at a time. Both print the answers counted as one JSON
 * line.
 * Frames are masked with a zero key (valid, and ws then skips the masking pass) and answers are counted, not kept.
 */
import http from 'node:http';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

/** A JWT-looking token of exactly `length` characters that differs from its siblings only in its last characters. */
export function longToken(i: number, length: number): string {
  const head = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.';
  const tail = '.' + String(i).padStart(10, '0');
  return head + 'A'.repeat(length - head.length - tail.length) + tail;
}

export async function floodConnect(url: string, count: number, length: number, sockets: number, window: number): Promise<Record<string, number>> {
  const codes: Record<string, number> = {};
  let next = 0;
  const run = (): Promise<void> =>
    new Promise((done, reject) => {
      const ws = new WebSocket(url, { generateMask: (mask: Buffer) => void mask.fill(0) });
      let waiting = 0;
      const send = (): void => {
        while (waiting < window && next < count) {
          const i = next++;
          waiting++;
          ws.send(Buffer.from(`{"op":"connect","id":${i},"token":"${longToken(i, length)}"}`), { binary: false });
        }
        if (waiting === 0) ws.close();
      };
      ws.on('message', (raw) => {
        const a = JSON.parse(String(raw)) as { type?: string; error?: { code?: string } };
        const code = a.type === 'error' ? (a.error?.code ?? '?') : 'accepted';
        codes[code] = (codes[code] ?? 0) + 1;
        waiting--;
        send();
      });
      ws.once('open', send);
      ws.once('error', reject);
      ws.once('close', () => done());
    });
  await Promise.all(Array.from({ length: sockets }, run));
  return codes;
}

/** One GET with a long token; resolves with "status:code" (or the upgrade's status). */
function refusedGet(base: string, i: number, length: number): Promise<string> {
  const token = longToken(i, length);
  if (i % 3 === 0) {
    return new Promise((done) => {
      const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/ws?token=${token}`);
      ws.once('unexpected-response', (_req, res) => {
        res.resume();
        ws.terminate();
        done(`ws:${res.statusCode}`);
      });
      ws.once('open', () => {
        ws.terminate();
        done('ws:101');
      });
      ws.once('error', () => done('ws:error'));
    });
  }
  const path = i % 3 === 1 ? `/sub?token=${token}` : '/sub?channel=x';
  const headers: Record<string, string> = i % 3 === 2 ? { Authorization: `Bearer ${token}` } : {};
  const kind = i % 3 === 1 ? 'sub' : 'bearer';
  return new Promise((done) => {
    const req = http.get(`${base}${path}`, { headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        let code = '?';
        try {
          code = (JSON.parse(body) as { error?: { code?: string } }).error?.code ?? '?';
        } catch {
          /* not JSON */
        }
        done(`${kind}:${res.statusCode}:${code}`);
      });
      if (res.statusCode === 200) req.destroy();
    });
    req.on('error', () => done(`${kind}:error`));
  });
}

export async function floodUrl(base: string, count: number, length: number, lanes: number): Promise<Record<string, number>> {
  const codes: Record<string, number> = {};
  let next = 0;
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (next < count) {
        const what = await refusedGet(base, next++, length);
        codes[what] = (codes[what] ?? 0) + 1;
      }
    }),
  );
  return codes;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const [mode, url = '', count = '0', length = '0', a = '2', b = '8'] = process.argv.slice(2);
  const run =
    mode === 'url'
      ? floodUrl(url, Number(count), Number(length), Number(a))
      : floodConnect(url, Number(count), Number(length), Number(a), Number(b));
  run.then(
    (codes) => process.stdout.write(JSON.stringify(codes) + '\n'),
    (err: unknown) => {
      process.stderr.write(`${String(err)}\n`);
      process.exit(1);
    },
  );
}
