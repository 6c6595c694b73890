/**
 * A subscriber worker process (forked by workers.ts): holds its share of the connections and answers the parent's
 * requests over IPC. It exits when the parent goes away, so a crashed bench leaves no worker behind.
 */
import type { FromWorker, ToWorker } from './protocol.js';
import { SocketIoPool } from './socketio-subscriber.js';
import { SubscriberPool } from './subscriber.js';

let pool: SubscriberPool | SocketIoPool | undefined;
const send = (m: FromWorker): void => {
  if (process.connected) process.send?.(m);
};

process.on('message', (m: ToWorker) => {
  try {
    switch (m.type) {
      case 'connect':
        pool = m.spec.socketio ? new SocketIoPool(m.spec) : new SubscriberPool(m.spec);
        pool.start();
        break;
      case 'step':
        pool?.beginStep(m.step);
        send({ type: 'step-ready', step: m.step });
        break;
      case 'expect':
        pool?.expect(m.step, m.okPerChannel);
        break;
      case 'stats':
        if (pool) send({ type: 'stats', stats: pool.stats() });
        break;
      case 'close':
        pool?.close();
        process.disconnect();
        break;
    }
  } catch (err) {
    send({ type: 'error', message: err instanceof Error ? err.message : String(err) });
  }
});

// Progress while connecting, so the parent can tell when every connection is held.
const ticker = setInterval(() => {
  if (pool) send({ type: 'progress', progress: pool.progress() });
}, 250);
ticker.unref();
process.on('disconnect', () => {
  pool?.close();
  process.exit(0);
});
