/**
 * A TCP proxy on a free port in front of a test server, so a test can cut every client connection at once (as a
 * network drop would) while the server and the clients stay up.
 */
import net from 'node:net';

export interface CuttingProxy {
  readonly url: string;
  /** Destroy every open connection (both sides). New connections are accepted again at once. */
  cut(): void;
  close(): Promise<void>;
}

export async function startProxy(target: string): Promise<CuttingProxy> {
  const t = new URL(target);
  const pairs = new Set<[net.Socket, net.Socket]>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(t.port), t.hostname);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    const drop = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const cut = (): void => {
    for (const [a, b] of [...pairs]) {
      a.destroy();
      b.destroy();
    }
    pairs.clear();
  };
  return {
    url: `http://127.0.0.1:${port}`,
    cut,
    close() {
      cut();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}
