/**
 * Close the connections the primary handed to a worker that died before it took them (issue 12).
 *
 * node:cluster's round-robin primary accepts every connection itself and sends it to a worker over IPC with a
 * `newconn` message, keeping its own copy of the descriptor until the worker acknowledges (lib/internal/cluster/
 * round_robin_handle.js `handoff`). A worker SIGKILLed with one in flight never acknowledges, and node keeps the
 * acknowledgement's callback, and with it the descriptor, for ever: the client's connection stays established with
 * nobody reading it, and a client without a request timeout (a /poll, a resume) waits for ever. One such connection
 * per dying worker, so about one /poll client in 40-100 of a chaos worker-kill run.
 *
 * node offers no hook for this, so the guard watches the two ends of that exchange on the worker's IPC channel: the
 * `newconn` message with its handle going out, and the `ack` coming back. What is still unacknowledged when the
 * worker exits is closed, so its client sees the connection end and retries on a live worker. If a later node
 * changes these internal messages the guard records nothing and changes nothing; test/worker-handoff.test.ts then
 * fails, which is how we would learn.
 */
import type { Worker } from 'node:cluster';

interface ClusterMessage {
  readonly cmd?: unknown;
  readonly act?: unknown;
  readonly seq?: unknown;
  readonly ack?: unknown;
}

interface Closable {
  close(): void;
}

const asMessage = (m: unknown): ClusterMessage => (typeof m === 'object' && m !== null ? (m as ClusterMessage) : {});
const isClosable = (h: unknown): h is Closable => typeof h === 'object' && h !== null && typeof (h as Closable).close === 'function';

/** Install on a freshly forked worker, before it listens. */
export function guardHandoffs(worker: Worker): void {
  const child = worker.process;
  const pending = new Map<number, Closable>();
  const send = child.send.bind(child) as (...args: unknown[]) => boolean;
  child.send = ((message: unknown, ...rest: unknown[]): boolean => {
    const m = asMessage(message);
    const handle = rest[0];
    if (m.cmd === 'NODE_CLUSTER' && m.act === 'newconn' && typeof m.seq === 'number' && isClosable(handle)) {
      pending.set(m.seq, handle);
    }
    return send(message, ...rest);
  }) as typeof child.send;
  child.on('internalMessage', (message: unknown) => {
    const m = asMessage(message);
    if (m.cmd === 'NODE_CLUSTER' && typeof m.ack === 'number') pending.delete(m.ack);
  });
  worker.once('exit', () => {
    for (const handle of pending.values()) handle.close();
    pending.clear();
  });
}
