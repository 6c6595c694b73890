/**
 * A TCP proxy in front of a Herald node, to cut a client's connection on cue while the node (and its history) stays
 * up: `cut()` destroys every proxied connection, `block()` refuses new ones until `unblock()`.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export class CuttableProxy {
  private blocked = false;
  /** Close connections whose first request asks for `/ws`, as proxies that break WebSockets do. */
  refuseWebSockets = false;
  private readonly pairs = new Set<net.Socket>();
  private readonly server: net.Server;

  private constructor(private targetPort: number) {
    this.server = net.createServer((client) => this.accept(client));
  }

  static async start(targetUrl: string, port = 0): Promise<CuttableProxy> {
    const p = new CuttableProxy(Number(new URL(targetUrl).port));
    await new Promise<void>((r) => p.server.listen(port, '127.0.0.1', r));
    return p;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Connections currently proxied (each counted once, on the client side). */
  get connections(): number {
    return this.pairs.size;
  }

  retarget(targetUrl: string): void {
    this.targetPort = Number(new URL(targetUrl).port);
  }

  private accept(client: net.Socket): void {
    if (this.blocked) {
      client.destroy();
      return;
    }
    if (this.refuseWebSockets) {
      client.once('data', (first: Buffer) => {
        if (/^GET \/ws[ ?]/.test(first.toString('latin1', 0, 16))) client.destroy();
        else this.forward(client, first);
      });
      return;
    }
    this.forward(client, undefined);
  }

  private forward(client: net.Socket, first: Buffer | undefined): void {
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    if (first) upstream.write(first);
    this.pairs.add(client);
    const end = (): void => {
      this.pairs.delete(client);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Destroy every proxied connection, as a network loss would (no FIN reaches either side cleanly). */
  cut(): void {
    for (const c of [...this.pairs]) c.destroy();
  }

  block(): void {
    this.blocked = true;
  }

  unblock(): void {
    this.blocked = false;
  }

  async close(): Promise<void> {
    this.block();
    this.cut();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
