/**
 * Faults: errors that reached a place they should not have. Two kinds, both counted for the whole process:
 * - `internal`: an unexpected error caught at a connection's boundary (a socket or WebSocket event handler). The
 *   connection is closed with its documented answer; the error is logged and counted here, by where it was caught.
 * - `uncaught`: an error that escaped every handler (`uncaughtException`, `unhandledRejection`), seen by the process
 *   guard of `herald serve` (src/cli/process-guard.ts).
 * Servers read the counts into /metrics and listen here to log what happened. No domain imports.
 */

export type FaultKind = 'internal' | 'uncaught';

export interface Fault {
  readonly kind: FaultKind;
  /** Where it was caught: `ws_message`, `socket_data`, `uncaughtException`, ... */
  readonly where: string;
  readonly error: unknown;
}

const counts = new Map<string, number>();
const listeners = new Set<(fault: Fault) => void>();

/** Count a fault and tell the listeners. Never throws. */
export function reportFault(kind: FaultKind, where: string, error: unknown): void {
  const key = `${kind}\u0000${where}`;
  counts.set(key, (counts.get(key) ?? 0) + 1);
  for (const l of listeners) {
    try {
      l({ kind, where, error });
    } catch {
      // A listener (a logger) that fails must not turn one fault into another.
    }
  }
}

/** Listen to faults (a server logs them); returns the function that stops listening. */
export function onFault(listener: (fault: Fault) => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** The counts of one kind, by where: samples for a Prometheus counter. */
export function* faultCounts(kind: FaultKind): Iterable<[Record<string, string>, number]> {
  let any = false;
  for (const [key, n] of counts) {
    const [k, where] = key.split('\u0000');
    if (k !== kind || where === undefined) continue;
    any = true;
    yield [{ where }, n];
  }
  if (!any) yield [{}, 0];
}

/** A short, single-line description of an error for a log line (name, message, first stack frames). */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const frames = (error.stack ?? '').split('\n').slice(1, 4).map((l) => l.trim()).join(' | ');
    return `${error.name}: ${error.message.slice(0, 200)}${frames ? ` (${frames})` : ''}`;
  }
  return String(error).slice(0, 200);
}
