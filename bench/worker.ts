/**
 * A subscriber worker process (forked by workers.ts): holds its share of the connections and answers the parent's
 * requests over IPC. It exits when the parent goes away, so a crashed bench leaves no worker behind.
 */
import { Churner } from './churn.js';
import type { FromWorker, ToWorker } from './protocol.js';
import { SocketIoPool } from './socketio-subscriber.js';
import { SubscriberPool } from './subscriber.js';

let pool: SubscriberPool | SocketIoPool | undefined;
let churner: Churner | undefined;
const send = (m: FromWorker): void => {
  if (process.connected) process.send?.(m);
};

process.on('message', (m: ToWorker) => {
  try {
    switch (m.type) {
      case 'connect':
        pool = m.spec.socketio ? new SocketIoPool(m.spec) : new SubscriberPool(m.spec);
        pool.start();
        if (m.spec.churn) churner = new Churner(m.spec, m.spec.churn.perSecond, m.spec.churn.holdMs);
        break;
      case 'step':
        pool?.beginStep(m.step);
        churner?.begin();
        send({ type: 'step-ready', step: m.step });
        break;
      case 'expect':
        pool?.expect(m.step, m.okPerChannel);
        // The publisher is done: churn stops with it (connections still open close after their hold time).
        churner?.end();
        break;
      case 'stats':
        if (pool) send({ type: 'stats', stats: { ...pool.stats(), ...(churner ? { churn: churner.result() } : {}) } });
        break;
      case 'close':
        churner?.close();
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
  churner?.close();
  pool?.close();
  process.exit(0);
});
