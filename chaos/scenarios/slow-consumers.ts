/**
 * Slow consumers beside fast ones on one hot channel: every checked subscriber listens to `hot`, and so do 50 raw
 * /sub sockets that never read and 50 that read a little every half second. Messages carry 4 KB of padding and the
 * queue is 128 KiB (--max-queue-bytes), so the slow ones fill it within seconds. The fast ones must see every message once, in order, with
 * their latency unaffected; the never-reading ones must be cut as `slow`.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { sleep } from '../../bench/clock.js';
import { onCleanup } from '../cleanup.js';
import type { Ctx, StreamScenario } from '../harness.js';
import type { ChaosOptions } from '../options.js';

const SLOW = 50;

/**
 * Has the server let go of this socket? A client that does not read never sees the FIN (it waits behind the unread
 * bytes, the window being closed), so look at the server's end in the kernel's table: gone, or no longer
 * ESTABLISHED (FIN_WAIT1 with the bytes it gave up on), means the server closed it.
 */
function closedByServer(localPort: number | undefined, serverPort: number): boolean {
  if (localPort === undefined) return true;
  const hex = (p: number): string => `0100007F:${p.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[1] === hex(serverPort) && f[2] === hex(localPort)) return f[3] !== '01';
  }
  return true;
}

interface SlowSocket {
  readonly socket: net.Socket;
  readonly reads: boolean;
  closed: boolean;
}

function openSlow(url: string, reads: boolean): SlowSocket {
  const u = new URL(url);
  const socket = net.connect(Number(u.port), u.hostname);
  const s: SlowSocket = { socket, reads, closed: false };
  socket.setNoDelay(true);
  socket.on('connect', () => socket.write(`GET /sub?channel=hot HTTP/1.1\r\nHost: ${u.host}\r\n\r\n`));
  socket.on('error', () => undefined);
  socket.on('close', () => (s.closed = true));
  // Read the response head, then stop reading (or read a trickle).
  socket.once('data', () => socket.pause());
  return s;
}

export function slowConsumers(opts: ChaosOptions): StreamScenario {
  const slow: SlowSocket[] = [];
  let trickle: NodeJS.Timeout | undefined;
  return {
    broker: 'memory',
    nodes: 1,
    channels: ['hot'],
    // Big messages and a small queue, so the slow ones overflow within seconds even when the machine is too busy to
    // publish more than a few dozen a second; heartbeats every 5 s find the never-readers as dead peers too.
    padding: 4 * 1024,
    nodeArgs: ['--max-queue-bytes', String(128 * 1024), '--heartbeat-seconds', '5'],
    async fault(ctx: Ctx) {
      const url = ctx.nodes[0]!.url;
      for (let i = 0; i < SLOW; i++) slow.push(openSlow(url, false), openSlow(url, true));
      onCleanup(() => slow.forEach((s) => s.socket.destroy()));
      // The trickle readers take one chunk every 500 ms: far below 200 KB/s.
      trickle = setInterval(() => {
        for (const s of slow) {
          if (!s.reads || s.closed) continue;
          s.socket.resume();
          setImmediate(() => s.socket.pause());
        }
      }, 500);
      ctx.notes.push(`${ctx.at()} ${SLOW} never-reading and ${SLOW} trickle-reading /sub sockets join channel hot (up to ${opts.rate} msg/s of ~4 KB)`);
      // Ballast beside the counted messages: `w` messages of 16 KB (subscribers take them as position moves only),
      // one at a time for half the run, so the slow sockets overflow even where the kernel buffers megabytes.
      const until = Date.now() + Math.max(0, opts.durationMs / 2);
      const ballast = JSON.stringify({ channel: 'hot', data: 'w' + 'x'.repeat(16 * 1024) });
      let sent = 0;
      while (Date.now() < until) {
        const ok = await fetch(`${url}/api/publish`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: ballast })
          .then((r) => r.arrayBuffer().then(() => r.ok), () => false);
        if (ok) sent++;
      }
      ctx.extra['ballast published'] = `${sent} messages of 16 KB`;
      return undefined;
    },
    async afterClients(ctx: Ctx) {
      clearInterval(trickle);
      const neverRead = slow.filter((s) => !s.reads);
      const port = Number(new URL(ctx.nodes[0]!.url).port);
      const cut = neverRead.filter((s) => s.closed || closedByServer(s.socket.localPort, port)).length;
      const m = await ctx.nodes[0]!.metrics();
      ctx.extra['never-reading sockets cut by the server'] = `${cut} of ${neverRead.length}`;
      ctx.extra['trickle readers cut'] = `${slow.filter((s) => s.reads && (s.closed || closedByServer(s.socket.localPort, port))).length} of ${SLOW}`;
      ctx.extra['disconnects reason=slow'] = m['herald_disconnects_total{reason="slow"}'] ?? 0;
      ctx.extra['disconnects reason=dead_peer'] = m['herald_disconnects_total{reason="dead_peer"}'] ?? 0;
      if (cut < neverRead.length) ctx.failures.push(`slow-consumers: ${neverRead.length - cut} never-reading sockets still open`);
      for (const s of slow) s.socket.destroy();
      await sleep(500);
    },
  };
}
