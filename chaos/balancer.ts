/**
 * A TCP balancer in front of several nodes, as a deployment has one: each new connection goes to the next node in
 * turn that accepts it; a node that refuses (killed) is skipped. Connections to a node that dies are cut, so their
 * clients reconnect through the balancer and land on a live node, whatever their own failover logic (an EventSource
 * or the SDK know one URL only). Each fleet process runs its own, so no single process carries every byte.
 */
import net from 'node:net';

export interface Balancer {
  readonly url: string;
  close(): void;
}

export async function startBalancer(upstreams: readonly string[], localAddress?: string): Promise<Balancer> {
  const targets = upstreams.map((u) => new URL(u));
  let next = 0;
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket): void => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  const server = net.createServer((client) => {
    track(client);
    client.pause();
    client.on('error', () => client.destroy());
    const attempt = (tries: number): void => {
      if (tries >= targets.length || client.destroyed) {
        client.destroy();
        return;
      }
      const t = targets[next++ % targets.length] as URL;
      const upstream = net.connect({ host: t.hostname, port: Number(t.port), localAddress });
      track(upstream);
      let connected = false;
      upstream.once('connect', () => {
        connected = true;
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
      upstream.on('error', () => {
        if (!connected) attempt(tries + 1);
        else client.destroy();
      });
      // A node that closes after its answer (a poll, a refusal) must have that answer flushed, not cut off.
      upstream.on('close', (hadError) => {
        if (!connected) return;
        if (hadError) client.destroy();
        else client.end();
      });
      client.on('close', () => upstream.destroy());
    };
    attempt(0);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    close() {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}
