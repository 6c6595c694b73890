/**
 * What a channel may do and keep, decided in one place from the config: its history, its subscriber limit, whether
 * it may be subscribed without credentials, and whether WebSocket clients may publish to it. Built once in server.ts,
 * before the node and auth, which both ask it (the node: history for publishing and resuming; auth: anonymous
 * access, limits and client publish).
 *
 * Rules come by channel-name prefix: a channel `chat:room1` belongs to the namespace `chat` when one is configured;
 * every other channel (no `:`, or an unconfigured prefix) to the default namespace. A namespace's history settings
 * override the node's (`historySize`, `historyTtlSeconds`); everything is worked out per namespace once, here, so a
 * lookup is a prefix and a map read.
 */
import type { HistoryPolicy } from '../broker/broker.js';
import type { HeraldConfig, NamespaceRules } from '../config.js';

export type ChannelPolicyConfig = Pick<
  HeraldConfig,
  'namespaces' | 'defaultNamespace' | 'dev' | 'historySize' | 'historyTtlSeconds' | 'historyMetaTtlSeconds'
>;

/** History kept when a namespace sets a size but no TTL. */
const DEFAULT_HISTORY_TTL_SECONDS = 300;
/** How long a namespace channel's position is kept when the node keeps no history itself. */
const DEFAULT_META_TTL_MS = 3600_000;

/** A policy from the three settings, or undefined when size or TTL is 0 (history off). */
export function historyPolicy(size: number, ttlSeconds: number, metaTtlSeconds: number): HistoryPolicy | undefined {
  if (size <= 0 || ttlSeconds <= 0) return undefined;
  return Object.freeze({ size, ttlMs: ttlSeconds * 1000, metaTtlMs: Math.max(metaTtlSeconds, ttlSeconds) * 1000 });
}

/** One namespace's rules with its history worked out. */
interface Resolved {
  readonly rules: NamespaceRules;
  readonly history: HistoryPolicy | undefined;
}

export class ChannelPolicy {
  private readonly byName: ReadonlyMap<string, Resolved>;
  private readonly fallback: Resolved;
  private readonly dev: boolean;

  constructor(config: ChannelPolicyConfig) {
    const node = historyPolicy(config.historySize, config.historyTtlSeconds, config.historyMetaTtlSeconds);
    const resolve = (rules: NamespaceRules): Resolved => Object.freeze({ rules, history: namespaceHistory(rules, node) });
    this.byName = new Map(Object.entries(config.namespaces).map(([name, rules]) => [name, resolve(rules)]));
    this.fallback = resolve(config.defaultNamespace);
    this.dev = config.dev;
  }

  /** The namespace a channel belongs to; "" for the default namespace. */
  namespaceOf(channel: string): string {
    const i = channel.indexOf(':');
    if (i <= 0) return '';
    const prefix = channel.slice(0, i);
    return this.byName.has(prefix) ? prefix : '';
  }

  /** The history a channel keeps, or undefined when it keeps none (no ids, no resume: live only). */
  history(channel: string): HistoryPolicy | undefined {
    return this.of(channel).history;
  }

  /** Subscribe with `channel=` alone: --dev, or a namespace with `anonymous: true`. */
  allowsAnonymous(channel: string): boolean {
    return this.dev || this.of(channel).rules.anonymous === true;
  }

  /** The namespace lets WebSocket clients that may subscribe a channel publish to it too (`clientPublish`). */
  allowsClientPublish(channel: string): boolean {
    return this.of(channel).rules.clientPublish === true;
  }

  /**
   * The channel keeps presence (who is subscribed: docs/presence.md): its namespace says `presence` or `joinLeave`,
   * or --dev, where every channel does.
   */
  presence(channel: string): boolean {
    const rules = this.of(channel).rules;
    return this.dev || rules.presence === true || rules.joinLeave === true;
  }

  /** Every subscriber of the channel is told of joins and leaves (`joinLeave`); elsewhere only clients that ask. */
  joinLeave(channel: string): boolean {
    return this.of(channel).rules.joinLeave === true;
  }

  /** Subscribers a channel may have on one node; 0 = unlimited. */
  maxSubscribers(channel: string): number {
    return this.of(channel).rules.maxSubscribers ?? 0;
  }

  private of(channel: string): Resolved {
    const name = this.namespaceOf(channel);
    return name === '' ? this.fallback : (this.byName.get(name) ?? this.fallback);
  }
}

/**
 * A namespace's history: its own where it sets `historySize` (a size of 0 keeps none), the node's otherwise; its
 * `historyTtlSeconds` replaces the TTL either way (0 keeps none). Positions outlive messages by the node's
 * historyMetaTtlSeconds, and at least the namespace's TTL.
 */
function namespaceHistory(r: NamespaceRules, node: HistoryPolicy | undefined): HistoryPolicy | undefined {
  if (r.historyTtlSeconds === 0 || r.historySize === 0) return undefined;
  if (r.historySize === undefined) {
    if (node && r.historyTtlSeconds !== undefined) return withTtl(node.size, r.historyTtlSeconds * 1000, node);
    return node;
  }
  return withTtl(r.historySize, (r.historyTtlSeconds ?? DEFAULT_HISTORY_TTL_SECONDS) * 1000, node);
}

function withTtl(size: number, ttlMs: number, node: HistoryPolicy | undefined): HistoryPolicy {
  return Object.freeze({ size, ttlMs, metaTtlMs: Math.max(ttlMs, node?.metaTtlMs ?? DEFAULT_META_TTL_MS) });
}
