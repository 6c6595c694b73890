/**
 * Namespaces: rules by channel-name prefix. A channel `chat:room1` belongs to the namespace `chat` when one is
 * configured; every other channel (no `:`, or an unconfigured prefix) to the default namespace. Rules say who may
 * subscribe without credentials, whether WebSocket clients may publish, how many subscribers a channel may have on a
 * node, and how much history it keeps.
 */
import type { HistoryPolicy } from '../broker/broker.js';
import type { HeraldConfig, NamespaceRules } from '../config.js';
import { grantAllows, type Grant } from './grant.js';

/** History kept when a namespace sets a size but no TTL. */
const DEFAULT_HISTORY_TTL_SECONDS = 300;
/** How long a namespace channel's position is kept when the node keeps no history itself. */
const DEFAULT_META_TTL_MS = 3600_000;

export class Namespaces {
  private readonly byName: ReadonlyMap<string, NamespaceRules>;
  private readonly fallback: NamespaceRules;

  constructor(private readonly config: Pick<HeraldConfig, 'namespaces' | 'defaultNamespace' | 'dev'>) {
    this.byName = new Map(Object.entries(config.namespaces));
    this.fallback = config.defaultNamespace;
  }

  /** The namespace a channel belongs to; "" for the default namespace. */
  nameOf(channel: string): string {
    const i = channel.indexOf(':');
    if (i <= 0) return '';
    const prefix = channel.slice(0, i);
    return this.byName.has(prefix) ? prefix : '';
  }

  rulesFor(channel: string): NamespaceRules {
    const name = this.nameOf(channel);
    return name === '' ? this.fallback : (this.byName.get(name) ?? this.fallback);
  }

  /** Subscribe with `channel=` alone: --dev, or a namespace with `anonymous: true`. */
  allowsAnonymous(channel: string): boolean {
    return this.config.dev || this.rulesFor(channel).anonymous === true;
  }

  /**
   * May a WebSocket client publish to `channel`? When its grant gives the publish right for the channel, or when the
   * namespace allows client publishing and the client may subscribe the channel (by grant or anonymously).
   */
  mayClientPublish(channel: string, grant: Grant | undefined): boolean {
    const g = grant ? grantAllows(grant, channel) : undefined;
    if (g?.publish) return true;
    if (this.rulesFor(channel).clientPublish !== true) return false;
    return g !== undefined || this.allowsAnonymous(channel);
  }

  /** Subscribers a channel may have on one node; 0 = unlimited. */
  maxSubscribers(channel: string): number {
    return this.rulesFor(channel).maxSubscribers ?? 0;
  }

  /**
   * The history policy of a channel: its namespace's, where it sets `historySize`, else `nodeDefault` (the node's
   * history settings). A size of 0 keeps no history.
   */
  historyFor(channel: string, nodeDefault?: (channel: string) => HistoryPolicy | undefined): HistoryPolicy | undefined {
    const r = this.rulesFor(channel);
    const base = nodeDefault?.(channel);
    if (r.historyTtlSeconds === 0) return undefined;
    if (r.historySize === undefined) {
      if (base && r.historyTtlSeconds !== undefined) return withTtl(base.size, r.historyTtlSeconds * 1000, base);
      return base;
    }
    if (r.historySize === 0) return undefined;
    return withTtl(r.historySize, (r.historyTtlSeconds ?? DEFAULT_HISTORY_TTL_SECONDS) * 1000, base);
  }
}

/** Positions outlive messages by the node's historyMetaTtlSeconds (at least the namespace's TTL). */
function withTtl(size: number, ttlMs: number, base: HistoryPolicy | undefined): HistoryPolicy {
  return { size, ttlMs, metaTtlMs: Math.max(ttlMs, base?.metaTtlMs ?? DEFAULT_META_TTL_MS) };
}
