import { MemoryBroker } from '../src/broker/memory.js';
import { brokerConformance } from './helpers/broker-conformance.js';

brokerConformance('memory', async () => ({
  newBroker: () => new MemoryBroker(),
  multiNode: false,
  close: async () => undefined,
}));
