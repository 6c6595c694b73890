/**
 * `ws`'s WebSocketServer, loaded on the first WebSocket upgrade rather than at start. `ws` (and the node modules it
 * pulls in: https, tls, zlib) costs ~4 MB of a process's own memory; a node or worker that only ever holds `/sub`
 * and `/sse` connections never pays it, and with `--workers N` every process counts (docs/benchmarks.md
 * "Start-up footprint").
 */
import type { ServerOptions, WebSocketServer } from 'ws';

export class LazyWebSocketServer {
  private server: Promise<WebSocketServer> | undefined;

  constructor(private readonly options: ServerOptions) {}

  /** The server, loading `ws` the first time (a failed load is tried again by the next upgrade). */
  get(): Promise<WebSocketServer> {
    this.server ??= import('ws').then(
      (ws) => new ws.WebSocketServer(this.options),
      (err: unknown) => {
        this.server = undefined;
        throw err;
      },
    );
    return this.server;
  }
}
