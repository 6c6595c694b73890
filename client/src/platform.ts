/**
 * The platform's own pieces, looked up on `globalThis` at use time. The SDK compiles against plain ES2022 (no DOM, no
 * Node types), so it declares the little it reads here, structurally.
 */
import type { AbortControllerLike, Clock, EventSourceConstructor, FetchLike, Platform, WebSocketConstructor } from './types.js';

interface Globals {
  WebSocket?: WebSocketConstructor;
  EventSource?: EventSourceConstructor;
  fetch?: FetchLike;
  AbortController?: new () => AbortControllerLike;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const g = globalThis as unknown as Globals;

/** Real time. Timers are looked up per call so a test framework's mocked timers also apply. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => g.setTimeout(fn, ms),
  clearTimeout: (h) => g.clearTimeout(h),
};

/** Every platform piece, the injected one first, else the global one (bound, as browsers require for fetch). */
export interface ResolvedPlatform {
  WebSocket: WebSocketConstructor | undefined;
  EventSource: EventSourceConstructor | undefined;
  fetch: FetchLike | undefined;
  AbortController: (new () => AbortControllerLike) | undefined;
  clock: Clock;
  random: () => number;
}

export function resolvePlatform(p: Platform = {}): ResolvedPlatform {
  const globalFetch = g.fetch;
  return {
    WebSocket: p.WebSocket ?? g.WebSocket,
    EventSource: p.EventSource ?? g.EventSource,
    fetch: p.fetch ?? (globalFetch ? (url, init) => globalFetch.call(globalThis, url, init) : undefined),
    AbortController: p.AbortController ?? g.AbortController,
    clock: p.clock ?? systemClock,
    random: p.random ?? Math.random,
  };
}

/** Report an application error thrown by a listener the way the platform reports uncaught errors. */
export function reportLater(err: unknown): void {
  g.setTimeout(() => {
    throw err;
  }, 0);
}
