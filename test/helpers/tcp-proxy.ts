/**
 * A TCP proxy for fault tests: put it between Herald and Redis, then `freeze()` the connections open now. A frozen
 * connection stays open but forwards nothing either way: the "silently stopped delivering" failure that no socket
 * event reports (a dead NAT entry, a half-dead load balancer). New connections are frozen too until `thaw()`; after
 * it they pass, while the old ones stay frozen: only a client that reconnects recovers.
 */
import net from 'node:net';

export interface TcpProxy {
  readonly port: number;
  /** Connections currently open through the proxy. */
  readonly open: number;
  /** Stop forwarding on every connection open now and on new ones, without closing any. */
  freeze(): void;
  /** Let new connections pass again (those frozen stay frozen). */
  thaw(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket; frozen: boolean }>();
  let freezeNew = false;
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, targetHost);
    const pair = { client, upstream, frozen: freezeNew };
    pairs.add(pair);
    const forward = (from: net.Socket, to: net.Socket): void => {
      from.on('data', (chunk) => {
        if (!pair.frozen) to.write(chunk);
      });
    };
    forward(client, upstream);
    forward(upstream, client);
    const end = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    get open() {
      return pairs.size;
    },
    freeze() {
      freezeNew = true;
      for (const p of pairs) p.frozen = true;
    },
    thaw() {
      freezeNew = false;
    },
    async close() {
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
