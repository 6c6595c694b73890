/**
 * Slow consumers beside fast ones on one hot channel: every checked subscriber listens to `hot`, and so do 50 raw
 * /sub sockets that never read and 50 that read a little every half second. Messages carry 1 KB of padding, so the
 * slow ones fill their queue (maxQueueBytes) within seconds. The fast ones must see every message once, in order, with
 * their latency unaffected; the never-reading ones must be cut as `slow`.
 */
import net from 'node:net';
import { sleep } from '../../bench/clock.js';
import { onCleanup } from '../cleanup.js';
import type { Ctx, StreamScenario } from '../harness.js';
import type { ChaosOptions } from '../options.js';

const SLOW = 50;

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
    padding: 1024,
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
      ctx.notes.push(`${ctx.at()} ${SLOW} never-reading and ${SLOW} trickle-reading /sub sockets join channel hot (${opts.rate} msg/s of ~1 KB)`);
      await sleep(Math.max(0, opts.durationMs / 2));
      return undefined;
    },
    async afterClients(ctx: Ctx) {
      clearInterval(trickle);
      const neverRead = slow.filter((s) => !s.reads);
      const cut = neverRead.filter((s) => s.closed).length;
      const m = await ctx.nodes[0]!.metrics();
      ctx.extra['never-reading sockets cut by the server'] = `${cut} of ${neverRead.length}`;
      ctx.extra['trickle readers cut'] = `${slow.filter((s) => s.reads && s.closed).length} of ${SLOW}`;
      ctx.extra['disconnects reason=slow'] = m['herald_disconnects_total{reason="slow"}'] ?? 0;
      ctx.extra['disconnects reason=dead_peer'] = m['herald_disconnects_total{reason="dead_peer"}'] ?? 0;
      if (cut < neverRead.length) ctx.failures.push(`slow-consumers: ${neverRead.length - cut} never-reading sockets still open`);
      for (const s of slow) s.socket.destroy();
      await sleep(500);
    },
  };
}
