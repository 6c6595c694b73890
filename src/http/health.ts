/** GET /healthz (the process is alive), GET /readyz (broker reachable, not draining), GET /metrics (Prometheus). */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HeraldNode } from '../core/node.js';
import { HeraldError } from '../errors.js';
import { sendJson, sendText } from './respond.js';

function requireGet(req: IncomingMessage): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') throw new HeraldError('method_not_allowed', 'use GET');
}

export function serveHealth(req: IncomingMessage, res: ServerResponse): void {
  requireGet(req);
  sendJson(res, 200, { status: 'ok' });
}

export function serveReady(node: HeraldNode, req: IncomingMessage, res: ServerResponse): void {
  requireGet(req);
  const broker = node.broker.isReady();
  const ready = broker && !node.isDraining;
  sendJson(res, ready ? 200 : 503, {
    status: ready ? 'ready' : 'not ready',
    broker: broker ? 'up' : 'down',
    draining: node.isDraining,
  });
}

export function serveMetrics(node: HeraldNode, req: IncomingMessage, res: ServerResponse): void {
  requireGet(req);
  sendText(res, 200, 'text/plain; version=0.0.4; charset=utf-8', node.metrics.registry.render());
}
