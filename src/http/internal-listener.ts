/**
 * The internal listener (`internalPort`): a plain node:http server for operators' routes (/metrics, /admin,
 * /healthz, /readyz), so they need not be reachable from the public port. It has no front reader, no streams of
 * clients and no WebSocket upgrades: only the route table it is given.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { HeraldError } from '../errors.js';
import type { Router } from './router.js';
import { refuseAndClose } from './wire.js';

export class InternalListener {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  constructor(router: Router, options: { headersTimeoutMs: number; maxHeaderBytes: number; maxUrlBytes: number }) {
    this.server = createServer(
      {
        maxHeaderSize: options.maxHeaderBytes + options.maxUrlBytes,
        headersTimeout: options.headersTimeoutMs,
        requestTimeout: Math.max(options.headersTimeoutMs, 30_000),
        keepAliveTimeout: 5000,
      },
      router.handle,
    );
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    // A malformed request: 400 with the documented JSON error, no stack trace.
    this.server.on('clientError', (_err: Error, socket: Socket) => {
      if (!socket.writable) return socket.destroy();
      refuseAndClose(socket, new HeraldError('bad_request'));
    });
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  get address(): AddressInfo | undefined {
    return (this.server.address() as AddressInfo | null) ?? undefined;
  }

  /** Close at once, long-lived answers (an admin page's event stream) included. */
  close(): Promise<void> {
    if (!this.server.listening) return Promise.resolve();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    for (const s of this.sockets) s.destroy();
    return closed;
  }
}
