/**
 * A worker's seat in the machine (`herald serve --workers N`, see primary.ts): its link to the primary, the broker
 * it uses (the machine's embedded one through the link, or with Redis its own connections, chosen by server.ts), the
 * view its health routes answer from, and the status it reports to the primary every second.
 */
import cluster from 'node:cluster';
import type { HeraldConfig } from '../config.js';
import type { HeraldServer, HeraldServerOptions } from '../server.js';
import { Op } from './frames.js';
import { askPrimarySocket } from './primary.js';
import { PrimaryLink } from './primary-link.js';
import type { ClusterStatus, ClusterView } from './status.js';
import { WorkerBroker } from './worker-broker.js';
import { WorkerPresenceStore } from './worker-presence.js';

const STATUS_MS = 1000;

export interface MachineSeat {
  readonly workerId: number;
  readonly serverOptions: HeraldServerOptions;
  attach(server: HeraldServer): void;
  listening(): void;
  draining(): void;
  close(): void;
}

export async function joinMachine(config: HeraldConfig): Promise<MachineSeat> {
  const workerId = cluster.worker?.id ?? 0;
  const { socketPath, machineKey } = await askPrimarySocket();
  const link = new PrimaryLink(socketPath, workerId);
  await link.connect();
  let server: HeraldServer | undefined;
  let listening = false;
  let draining = false;
  const report = (): void => {
    const node = server?.node;
    link.push(Op.STATUS, listening && !draining && node !== undefined && node.isReady(), draining, node?.sessionCount() ?? 0, process.pid);
  };
  const timer = setInterval(report, STATUS_MS);
  timer.unref();
  link.events = {
    onPublication: () => undefined,
    metrics: () => server?.node.metrics.registry.render() ?? '',
    onClose: () => {
      if (draining) return;
      // Without the primary this worker is no part of the machine: its clients resume on the workers that are.
      server?.log.error('the link to the primary is gone: this worker exits', { worker: workerId });
      process.exit(1);
    },
  };
  const single = (): ClusterStatus => ({ expected: config.workers, restarts: 0, draining, workers: [] });
  const view: ClusterView = {
    workerId,
    machineKey,
    status: () => link.status() ?? single(),
    metrics: async (local) => {
      try {
        return (await link.request(Op.CLUSTER_METRICS)) as string;
      } catch {
        return local;
      }
    },
  };
  const serverOptions: HeraldServerOptions = {
    cluster: view,
    ...(config.broker === 'memory'
      ? {
          broker: new WorkerBroker(link),
          presenceStore: (ctx) => new WorkerPresenceStore(link, ctx),
          occupancy: (listener) => (link.onOccupancy = listener),
        }
      : {}),
  };
  return {
    workerId,
    serverOptions,
    attach: (s) => (server = s),
    listening: () => {
      listening = true;
      report();
    },
    draining: () => {
      draining = true;
      report();
    },
    close: () => {
      clearInterval(timer);
      link.close();
    },
  };
}
