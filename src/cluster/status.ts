/** What the primary tells every worker about the machine: the workers' last reports (for /healthz and /readyz). */

export interface WorkerStatus {
  /** node:cluster's worker id (a restarted worker gets a new one). */
  readonly id: number;
  readonly pid: number;
  /** Its /readyz: broker reachable, listening, not draining. */
  readonly ready: boolean;
  readonly draining: boolean;
  /** Client connections it holds. */
  readonly connections: number;
}

export interface ClusterStatus {
  /** Workers the primary keeps running (`workers`). */
  readonly expected: number;
  /** Workers restarted after they died, since the primary started. */
  readonly restarts: number;
  /** The primary is draining (SIGTERM): no worker is restarted any more. */
  readonly draining: boolean;
  readonly workers: readonly WorkerStatus[];
}

/** Ready when every expected worker is connected and ready and nothing drains. */
export function clusterReady(status: ClusterStatus): boolean {
  return !status.draining && status.workers.length >= status.expected && status.workers.every((w) => w.ready);
}

/** What a worker's health routes ask the machine (src/http/health.ts): absent in a single process. */
export interface ClusterView {
  /** This worker's id. */
  readonly workerId: number;
  /** A random key of this machine's run, the same in every worker (the --dev admin cookie's key). */
  readonly machineKey: Buffer;
  status(): ClusterStatus;
  /** Every Herald process's metrics (the primary's included), summed; `local` is this worker's own text. */
  metrics(local: string): Promise<string>;
}
