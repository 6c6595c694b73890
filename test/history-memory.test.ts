import { MemoryBroker } from '../src/broker/memory.js';
import type { Publication } from '../src/broker/broker.js';
import { historyConformance } from './helpers/history-conformance.js';

historyConformance('memory', async () => {
  const broker = new MemoryBroker();
  const received: Publication[] = [];
  await broker.start({ onPublication: (p) => received.push(p) });
  return { broker, received, close: () => broker.close() };
});
