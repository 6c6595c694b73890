/**
 * The access log (`accessLog: true`): one line per HTTP request answered and per stream ended, with the method,
 * the path without its query (a query can carry a token or a sealed key), the status, the bytes sent, the
 * milliseconds it lasted, the transport, and for streams the connection id and why it ended.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Session } from '../core/session.js';
import { ERROR_TABLE, type ErrorCode } from '../errors.js';
import type { Logger } from '../util/log.js';

export interface AccessEntry {
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly bytes?: number;
  readonly ms?: number;
  readonly transport: string;
  readonly remote?: string;
  readonly conn?: string;
  readonly reason?: string;
}

/** Paths are cut at 200 characters: a long one is a client's input, and log lines stay bounded. */
const MAX_PATH = 200;

export class AccessLog {
  constructor(private readonly log: Logger) {}

  write(e: AccessEntry): void {
    const fields = { ...e, path: e.path.slice(0, MAX_PATH) };
    if (this.log.access) this.log.access(fields);
    else this.log.info('access', fields);
  }

  /** Log a request node:http answers, once its answer is done (or the client left after its head was sent). */
  watch(req: IncomingMessage, res: ServerResponse, transport: string, remote: string): void {
    const started = performance.now();
    const socket = req.socket;
    const before = socket.bytesWritten;
    res.once('close', () => {
      // A stream taken over from node:http answers itself: its session's line says how it went.
      if (!res.headersSent) return;
      const raw = req.url ?? '/';
      const q = raw.indexOf('?');
      this.write({
        method: req.method ?? '-',
        path: q < 0 ? raw : raw.slice(0, q),
        status: res.statusCode,
        bytes: socket.bytesWritten - before,
        ms: Math.round(performance.now() - started),
        transport,
        remote,
      });
    });
  }

  /** A request refused before node:http saw it (the front reader, a WebSocket upgrade). */
  refused(method: string, path: string, code: ErrorCode | string, transport: string, remote?: string): void {
    const status = (ERROR_TABLE as Record<string, { status: number } | undefined>)[code]?.status ?? 400;
    this.write({ method, path, status, transport, remote, reason: code });
  }

  /** A stream's socket closed. Polls are logged as the requests they are. */
  sessionClosed(session: Session): void {
    const transport = session.options.transport;
    if (transport === 'poll') return;
    this.write({
      method: 'GET',
      path: `/${transport}`,
      status: transport === 'ws' ? 101 : 200,
      bytes: session.sentBytes(),
      ms: Date.now() - session.openedAt,
      transport,
      remote: session.options.remoteAddress,
      conn: session.id,
      reason: session.endedBy ?? 'client_gone',
    });
  }
}
