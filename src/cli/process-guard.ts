/**
 * The process guard of `herald serve`: the last line behind the connection boundaries.
 *
 * Every transport handler and parser catches what a client can make it throw and answers with its documented error
 * (issue 15: one WebSocket frame used to end the process). Should something still escape (a bug no test found), Node
 * would print a stack and exit, dropping every client of the node. The guard logs it at `error` with the stack's
 * first frames and counts it (`herald_uncaught_errors_total{where}` on /metrics), and the node keeps serving: the
 * errors Herald's own code can raise are per-connection ones, and a node that stays up keeps its other clients
 * connected, which is what an operator wants from a push server. The count and the log line make the bug visible;
 * alert on the counter.
 *
 * Only the CLI installs it: a program embedding Herald as a library keeps its own policy.
 */
import type { Logger } from '../util/log.js';
import { describeError, reportFault } from '../util/faults.js';

/** Install the guard; returns the function that removes it. */
export function installProcessGuard(log: Logger): () => void {
  const handle = (where: 'uncaughtException' | 'unhandledRejection', err: unknown): void => {
    reportFault('uncaught', where, err);
    try {
      log.error(`${where}: the node keeps running (a bug: please report it)`, { err: describeError(err) });
    } catch {
      // stderr gone: the count on /metrics still tells.
    }
  };
  const onException = (err: unknown): void => handle('uncaughtException', err);
  const onRejection = (reason: unknown): void => handle('unhandledRejection', reason);
  process.on('uncaughtException', onException);
  process.on('unhandledRejection', onRejection);
  return () => {
    process.off('uncaughtException', onException);
    process.off('unhandledRejection', onRejection);
  };
}
