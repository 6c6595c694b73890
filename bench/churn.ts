/**
 * Connection churn, run inside a subscriber worker beside its held connections (the `churn` scenario): while a
 * rate step publishes, open `perSecond` fresh subscriber connections per second on the same channels, each closed
 * by this side `holdMs` after it is live (the stream's 200, the WebSocket's 101, Socket.IO's connect). The held
 * connections' deliveries are what the step judges; these only count how many came up, failed or were refused.
 */
import net from 'node:net';
import { io } from 'socket.io-client';
import { channelName, type ChurnStats, type PoolSpec } from './protocol.js';
import { subscribeRequest } from './subscriber.js';

const TICK_MS = 20;

export class Churner {
  private timer: NodeJS.Timeout | undefined;
  private k = 0;
  private stats: ChurnStats = { attempted: 0, live: 0, failed: 0, errors: {} };
  /** Close functions of the churn connections open now. */
  private readonly open = new Set<() => void>();
  private readonly request: (channel: number, port: number) => string;

  constructor(private readonly spec: PoolSpec, private readonly perSecond: number, private readonly holdMs: number) {
    this.request = subscribeRequest(spec);
  }

  /** Start churning, counting from zero. */
  begin(): void {
    this.end();
    this.stats = { attempted: 0, live: 0, failed: 0, errors: {} };
    // Paced by the clock, not by tick count: a late timer (a busy core) catches up instead of falling behind.
    const t0 = Date.now();
    this.timer = setInterval(() => {
      const due = Math.floor((this.perSecond * (Date.now() - t0)) / 1000);
      while (this.stats.attempted < due) this.openOne();
    }, TICK_MS);
  }

  /** Stop opening connections (those open are still closed after their hold time). */
  end(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  result(): ChurnStats {
    return { ...this.stats, errors: { ...this.stats.errors } };
  }

  close(): void {
    this.end();
    for (const c of [...this.open]) c();
  }

  private openOne(): void {
    const index = this.k++;
    const channel = index % this.spec.channels;
    const addrs = this.spec.localAddresses;
    const localAddress = addrs.length > 0 ? addrs[index % addrs.length] : undefined;
    this.stats.attempted++;
    if (this.spec.socketio) this.openSocketIo(channel, localAddress);
    else this.openRaw(channel, localAddress);
  }

  private counted(outcome: 'live' | string): void {
    if (outcome === 'live') this.stats.live++;
    else {
      this.stats.failed++;
      this.stats.errors[outcome] = (this.stats.errors[outcome] ?? 0) + 1;
    }
  }

  private openRaw(channel: number, localAddress: string | undefined): void {
    const port = this.spec.port;
    const socket = net.connect({ host: this.spec.host, port, localAddress });
    let settled = false;
    let hold: NodeJS.Timeout | undefined;
    const close = (): void => {
      if (hold) clearTimeout(hold);
      socket.destroy();
      this.open.delete(close);
    };
    this.open.add(close);
    const settle = (outcome: string): void => {
      if (settled) return;
      settled = true;
      this.counted(outcome);
      if (outcome === 'live') hold = setTimeout(close, this.holdMs);
      else close();
    };
    const upgrade = this.spec.transport === 'ws' || this.spec.transport === 'pusher';
    let head = '';
    socket.setTimeout(this.spec.connectTimeoutMs, () => settle('timeout'));
    socket.on('connect', () => socket.write(this.request(channel, port)));
    socket.on('data', (d: Buffer) => {
      if (settled) return;
      head += d.toString('latin1');
      if (head.length < 12) return;
      socket.setTimeout(0);
      const status = head.slice(9, 12);
      settle(status === (upgrade ? '101' : '200') ? 'live' : `http_${status}`);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => settle(err.code ?? 'error'));
    socket.on('close', () => {
      settle('closed');
      this.open.delete(close);
    });
  }

  private openSocketIo(channel: number, localAddress: string | undefined): void {
    const socket = io(`http://${this.spec.host}:${this.spec.port}`, {
      transports: ['websocket'], reconnection: false, forceNew: true, timeout: this.spec.connectTimeoutMs,
      query: { channel: channelName(this.spec.channelPrefix, channel) },
      ...(localAddress !== undefined ? { localAddress } : {}),
    });
    let hold: NodeJS.Timeout | undefined;
    const close = (): void => {
      if (hold) clearTimeout(hold);
      socket.disconnect();
      this.open.delete(close);
    };
    this.open.add(close);
    socket.on('connect', () => {
      this.counted('live');
      hold = setTimeout(close, this.holdMs);
    });
    socket.on('connect_error', () => {
      this.counted('connect_error');
      close();
    });
  }
}
