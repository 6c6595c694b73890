/**
 * Which channels have subscribers, and how many, on every node: what the Pusher API's `channels` and
 * `channels/{name}` answer. Each node knows its own (the Hub); the others are asked over the control path, and their
 * answers are awaited a bounded time (a node that does not answer in time is left out, and the answer still comes).
 *
 * A reply fits one control message: past MAX_REPLY_BYTES of names a node says `truncated` and the list is cut.
 */
import { randomBytes } from 'node:crypto';
import type { ControlMessage } from '../core/control-path.js';
import type { HeraldNode } from '../core/node.js';
import { HeraldError } from '../errors.js';
import { validChannel } from '../presence/member.js';

const QUERY = 'pusher_channels_q';
const REPLY = 'pusher_channels_r';
/** How long the other nodes have to answer. */
const WAIT_MS = 500;
const MAX_IN_FLIGHT = 64;
const MAX_REPLY_BYTES = 48 * 1024;
const MAX_PREFIX_CHARS = 300;

interface Pending {
  readonly waitingFor: Set<string>;
  readonly counts: Map<string, number>;
  done(): void;
}

export class ClusterChannels {
  private readonly pending = new Map<string, Pending>();

  constructor(
    private readonly node: HeraldNode,
    /** The other nodes' ids as this node knows them (the stats every node shares each second). */
    private readonly peers: () => string[],
  ) {
    node.control.on(QUERY, (m) => this.answer(m));
    node.control.on(REPLY, (m) => this.reply(m));
  }

  /**
   * Subscribers per channel on every node: the channels starting with `prefix`, or the one channel `exact`.
   * Never rejects for a peer that stays silent; 429 when too many queries are waiting.
   */
  async count(prefix: string, exact?: string): Promise<Map<string, number>> {
    const counts = this.local(prefix, exact);
    const peers = this.peers().filter((id) => id !== this.node.nodeId);
    if (peers.length === 0) return counts;
    if (this.pending.size >= MAX_IN_FLIGHT) throw new HeraldError('too_many_requests', 'too many channel queries at once');
    const req = randomBytes(8).toString('hex');
    let timer: NodeJS.Timeout | undefined;
    const query: Pending = { waitingFor: new Set(peers), counts, done: () => undefined };
    const finished = new Promise<void>((resolve) => {
      Object.assign(query, { done: resolve });
      timer = setTimeout(resolve, WAIT_MS);
    });
    this.pending.set(req, query);
    try {
      await this.node.control.send(QUERY, { req, prefix, ...(exact !== undefined ? { exact } : {}) });
      await finished;
    } catch {
      // The broker is down: this node's own figures are all there is.
    } finally {
      clearTimeout(timer);
      this.pending.delete(req);
    }
    return counts;
  }

  private local(prefix: string, exact: string | undefined): Map<string, number> {
    const hub = this.node.hub;
    const out = new Map<string, number>();
    if (exact !== undefined) {
      const n = hub.memberCount(exact);
      if (n > 0) out.set(exact, n);
      return out;
    }
    for (const channel of hub.channelNames()) if (channel.startsWith(prefix)) out.set(channel, hub.memberCount(channel));
    return out;
  }

  private answer(m: ControlMessage): void {
    const { req, prefix, exact } = m.body;
    if (typeof req !== 'string' || req.length > 32 || typeof prefix !== 'string' || prefix.length > MAX_PREFIX_CHARS) return;
    if (exact !== undefined && !validChannel(exact)) return;
    const channels: [string, number][] = [];
    let bytes = 0;
    let truncated = false;
    for (const [channel, n] of this.local(prefix, exact as string | undefined)) {
      bytes += channel.length * 2 + 16;
      if (bytes > MAX_REPLY_BYTES) {
        truncated = true;
        break;
      }
      channels.push([channel, n]);
    }
    this.node.control.send(REPLY, { req, channels, truncated }, m.from).catch(() => undefined);
  }

  private reply(m: ControlMessage): void {
    const { req, channels } = m.body;
    const query = typeof req === 'string' ? this.pending.get(req) : undefined;
    if (!query || !query.waitingFor.has(m.from) || !Array.isArray(channels)) return;
    query.waitingFor.delete(m.from);
    for (const entry of channels as unknown[]) {
      if (!Array.isArray(entry) || entry.length !== 2) continue;
      const [channel, n] = entry as unknown[];
      if (!validChannel(channel) || typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) continue;
      query.counts.set(channel, (query.counts.get(channel) ?? 0) + n);
    }
    if (query.waitingFor.size === 0) query.done();
  }
}
