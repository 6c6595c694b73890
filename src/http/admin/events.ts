/**
 * GET /admin/events: the dashboard's live feed, as Server-Sent Events. One `stats` event per second with every
 * node's snapshot, pushed from ClusterStats' once-a-second update (the node's ticker), never a timer per viewer.
 * Viewers are few and bounded; one that stops reading, or whose login expired, is cut off.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ClusterStats, NodeStats } from '../../core/node-stats.js';
import { HeraldError } from '../../errors.js';

/** Dashboard streams one node serves at most. */
export const MAX_ADMIN_VIEWERS = 32;
/** A viewer with more than this unsent is dropped (a snapshot is a few KB a second). */
const MAX_VIEWER_BACKLOG = 256 * 1024;

interface Viewer {
  readonly res: ServerResponse;
  readonly expiresAt: number;
}

export class AdminEvents {
  private readonly viewers = new Set<Viewer>();
  private stop: (() => void) | undefined;

  constructor(
    private readonly stats: ClusterStats,
    private readonly nodeId: string,
    private readonly headers: Readonly<Record<string, string>>,
  ) {}

  open(req: IncomingMessage, res: ServerResponse, expiresAt: number): void {
    if (this.viewers.size >= MAX_ADMIN_VIEWERS) throw new HeraldError('unavailable', `at most ${MAX_ADMIN_VIEWERS} dashboard streams`);
    res.writeHead(200, { ...this.headers, 'Content-Type': 'text/event-stream; charset=utf-8', Connection: 'keep-alive' });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    req.socket.setNoDelay(true);
    const viewer: Viewer = { res, expiresAt };
    this.viewers.add(viewer);
    res.on('close', () => this.forget(viewer));
    res.write('retry: 2000\n\n');
    this.write(viewer, this.event(this.stats.current()));
    this.stop ??= this.stats.subscribe((nodes) => this.broadcast(nodes));
  }

  /** End every stream (the node drains). */
  close(): void {
    for (const v of [...this.viewers]) v.res.end();
    this.viewers.clear();
    this.stop?.();
    this.stop = undefined;
  }

  private broadcast(nodes: readonly NodeStats[]): void {
    const frame = this.event(nodes);
    const now = Date.now();
    for (const v of [...this.viewers]) {
      if (v.expiresAt <= now) {
        // The page reconnects, gets 401 and shows the login form.
        v.res.end('event: logout\ndata: {}\n\n');
        this.forget(v);
      } else this.write(v, frame);
    }
  }

  /** Encoded once per second for all viewers. */
  private event(nodes: readonly NodeStats[]): string {
    return `event: stats\ndata: ${JSON.stringify({ self: this.nodeId, at: Date.now(), nodes })}\n\n`;
  }

  private write(viewer: Viewer, frame: string): void {
    if (viewer.res.writableLength > MAX_VIEWER_BACKLOG) {
      viewer.res.destroy();
      this.forget(viewer);
      return;
    }
    viewer.res.write(frame);
  }

  private forget(viewer: Viewer): void {
    this.viewers.delete(viewer);
    if (this.viewers.size === 0) {
      this.stop?.();
      this.stop = undefined;
    }
  }
}
