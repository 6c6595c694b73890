/**
 * Which history a channel gets. The one place that decides it: publishing (what to keep) and resuming (whether a
 * channel can be recovered) both ask here. Namespaces extend it by wrapping `historyPolicyFor` (a per-namespace
 * policy first, the node-wide default otherwise); nothing else reads the history settings.
 */
import type { HistoryPolicy } from '../broker/broker.js';
import type { HeraldConfig } from '../config.js';

/** The history policy of a channel, or undefined when the channel keeps none (no ids, no resume: live only). */
export type HistoryPolicyFor = (channel: string) => HistoryPolicy | undefined;

/** A policy from the three settings, or undefined when size or TTL is 0 (history off). */
export function historyPolicy(size: number, ttlSeconds: number, metaTtlSeconds: number): HistoryPolicy | undefined {
  if (size <= 0 || ttlSeconds <= 0) return undefined;
  return Object.freeze({ size, ttlMs: ttlSeconds * 1000, metaTtlMs: Math.max(metaTtlSeconds, ttlSeconds) * 1000 });
}

/** The node-wide default: the same policy for every channel. */
export function historyPolicyFor(config: HeraldConfig): HistoryPolicyFor {
  const policy = historyPolicy(config.historySize, config.historyTtlSeconds, config.historyMetaTtlSeconds);
  return () => policy;
}
