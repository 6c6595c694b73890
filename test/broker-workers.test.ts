/** The broker conformance suite on the workers' broker: WorkerBrokers reaching one BrokerHost (the primary's end) over its Unix socket. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryBroker } from '../src/broker/memory.js';
import { BrokerHost } from '../src/cluster/broker-host.js';
import { PrimaryLink } from '../src/cluster/primary-link.js';
import { WorkerBroker } from '../src/cluster/worker-broker.js';
import { createLogger } from '../src/util/log.js';
import { brokerConformance } from './helpers/broker-conformance.js';

brokerConformance('workers (embedded broker in the primary)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-test-'));
  const host = new BrokerHost({
    socketPath: join(dir, 'workers.sock'),
    broker: new MemoryBroker(),
    log: createLogger('silent'),
    ownMetrics: () => '',
    machine: () => ({ expected: 0, restarts: 0, draining: false }),
  });
  await host.start();
  const links: PrimaryLink[] = [];
  return {
    newBroker: () => {
      const link = new PrimaryLink(join(dir, 'workers.sock'), links.length + 1);
      links.push(link);
      return new WorkerBroker(link);
    },
    multiNode: true,
    close: async () => {
      for (const link of links) link.close();
      await host.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
