/** GET /healthz (the process is alive), GET /readyz (broker reachable, not draining), GET /metrics (Prometheus). */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiKeys } from '../auth/api-key.js';
import type { HeraldConfig } from '../config.js';
import { clusterReady, type ClusterView } from '../cluster/status.js';
import type { HeraldNode } from '../core/node.js';
import { HeraldError } from '../errors.js';
import { bearerOf } from './request.js';
import { sendJson, sendText } from './respond.js';

function requireGet(req: IncomingMessage): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') throw new HeraldError('method_not_allowed', 'use GET');
}

/** With workers, /healthz also says which worker answered and what every worker last reported. */
export function serveHealth(req: IncomingMessage, res: ServerResponse, version: string, cluster?: ClusterView): void {
  requireGet(req);
  sendJson(res, 200, { status: 'ok', version, ...(cluster ? { worker: cluster.workerId, workers: cluster.status() } : {}) });
}

/** With workers, ready only when this worker is and every worker of the machine reported ready. */
export function serveReady(node: HeraldNode, req: IncomingMessage, res: ServerResponse, cluster?: ClusterView): void {
  requireGet(req);
  // Redis Cluster with some masters down is "degraded" and still ready: the channels of the other shards work, and
  // every node sees the same outage, so taking them all out of the balancer would only stop those channels too.
  const shards = node.broker.shardReadiness?.();
  const broker = node.broker.isReady() ? 'up' : shards && shards.ready > 0 ? 'degraded' : 'down';
  const machine = cluster?.status();
  const workersReady = machine ? machine.workers.filter((w) => w.ready).length : undefined;
  const ready = broker !== 'down' && !node.isDraining && (machine === undefined || clusterReady(machine));
  sendJson(res, ready ? 200 : 503, {
    status: ready ? 'ready' : 'not ready',
    broker,
    ...(shards ? { shards } : {}),
    draining: node.isDraining || machine?.draining === true,
    ...(machine ? { workers: { ready: workersReady, expected: machine.expected } } : {}),
  });
}

/**
 * Who may read /metrics: anyone in --dev or with `metricsPublic`; otherwise only with `Authorization: Bearer
 * <metricsToken>` (compared in constant time). Metrics name channels' counts, clients' numbers, limits hit: not for
 * the open internet. /healthz and /readyz stay open (load balancers probe them without credentials).
 */
export function metricsGate(config: Pick<HeraldConfig, 'dev' | 'metricsPublic' | 'metricsToken'>): (req: IncomingMessage) => void {
  if (config.dev || config.metricsPublic) return () => undefined;
  const token = config.metricsToken === '' ? undefined : new ApiKeys([config.metricsToken]);
  return (req) => {
    if (!token) throw new HeraldError('unauthorized', '/metrics needs a bearer token: set metricsToken (or metricsPublic)');
    const presented = bearerOf(req.headers.authorization);
    if (presented === undefined || token.match(presented) === undefined) {
      throw new HeraldError('unauthorized', presented === undefined ? 'missing metrics token' : 'invalid metrics token');
    }
  };
}

/** With workers, every process's metrics summed (src/cluster/metrics-sum.ts), whichever worker answers. */
export async function serveMetrics(
  node: HeraldNode,
  req: IncomingMessage,
  res: ServerResponse,
  allow: (req: IncomingMessage) => void = () => undefined,
  cluster?: ClusterView,
): Promise<void> {
  requireGet(req);
  allow(req);
  const local = node.metrics.registry.render();
  sendText(res, 200, 'text/plain; version=0.0.4; charset=utf-8', cluster ? await cluster.metrics(local) : local);
}
