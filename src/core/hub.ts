/**
 * The Hub: which local subscribers listen to which channel. One broker subscription per channel per node,
 * reference-counted: the first local subscriber of a channel subscribes the node at the broker, the last one
 * leaving unsubscribes it.
 *
 * Fan-out: subscribers of a channel are grouped by (wire format, channel label). A publication is encoded once per
 * group and the very same Buffer is handed to every member; nothing is allocated per subscriber here.
 */
import type { Broker, BrokerHandler, Publication } from '../broker/broker.js';
import { HeraldError } from '../errors.js';
import type { FrameEncoder } from '../protocol/frames.js';
import { parseMessageId } from '../protocol/message-id.js';
import type { Logger } from '../util/log.js';

/** Something that receives frames: a Session. */
export interface HubMember {
  /** `label` is the name the member joined the channel under (a session may hold one channel under two). */
  send(frame: Buffer, publication: Publication, label: string): void;
}

interface Group {
  readonly encoder: FrameEncoder;
  readonly label: string;
  readonly members: Set<HubMember>;
}

interface ChannelEntry {
  readonly groups: Map<string, Group>;
  size: number;
  /** Settles when the broker subscription made for this entry is live (or failed). */
  ready: Promise<void>;
}

export class Hub implements BrokerHandler {
  private readonly channels = new Map<string, ChannelEntry>();
  /** Per channel, the tail of its chain of broker subscribe/unsubscribe calls, so they reach the broker in order. */
  private readonly brokerOps = new Map<string, Promise<void>>();
  private members = 0;
  /** Frames handed to members since start (a counter for /metrics). */
  deliveries = 0;

  constructor(private readonly broker: Broker, private readonly log: Logger) {}

  /**
   * Add a member to a channel. Resolves once the node's broker subscription for the channel is live, so anything
   * published afterwards reaches the member. Rejects with `unavailable` (and leaves nothing behind) if the broker
   * cannot subscribe.
   */
  async join(channel: string, label: string, encoder: FrameEncoder, member: HubMember): Promise<void> {
    let entry = this.channels.get(channel);
    if (!entry) {
      entry = { groups: new Map(), size: 0, ready: Promise.resolve() };
      entry.ready = this.brokerOp(channel, () => this.broker.subscribe([channel]));
      this.channels.set(channel, entry);
    }
    const key = encoder.name + '\u0000' + label;
    let group = entry.groups.get(key);
    if (!group) {
      group = { encoder, label, members: new Set() };
      entry.groups.set(key, group);
    }
    if (group.members.has(member)) return entry.ready;
    group.members.add(member);
    entry.size++;
    this.members++;
    try {
      await entry.ready;
    } catch (err) {
      this.leave(channel, label, encoder, member);
      throw new HeraldError('unavailable', 'broker subscription failed', { cause: err });
    }
  }

  /** Remove a member; unsubscribes the node from the channel when it was the last local member. */
  leave(channel: string, label: string, encoder: FrameEncoder, member: HubMember): void {
    const entry = this.channels.get(channel);
    if (!entry) return;
    const key = encoder.name + '\u0000' + label;
    const group = entry.groups.get(key);
    if (!group || !group.members.delete(member)) return;
    entry.size--;
    this.members--;
    if (group.members.size === 0) entry.groups.delete(key);
    if (entry.size === 0) {
      this.channels.delete(channel);
      this.brokerOp(channel, () => this.broker.unsubscribe([channel])).catch((err: unknown) => {
        this.log.warn('broker unsubscribe failed', { channel, err: String(err) });
      });
    }
  }

  /** Broker handler: deliver a publication to every local member of its channel. */
  onPublication(publication: Publication): void {
    const entry = this.channels.get(publication.channel);
    if (!entry) return;
    if (publication.id !== undefined && publication.position === undefined) publication = withPosition(publication);
    for (const group of entry.groups.values()) {
      const frame = group.encoder.encode(publication, group.label);
      for (const member of group.members) member.send(frame, publication, group.label);
      this.deliveries += group.members.size;
    }
  }

  /** Channels with at least one local member. */
  channelCount(): number {
    return this.channels.size;
  }

  /** Local members of one channel (namespaces' `maxSubscribers`). */
  memberCount(channel: string): number {
    return this.channels.get(channel)?.size ?? 0;
  }

  /** (member, channel) pairs. */
  subscriptionCount(): number {
    return this.members;
  }

  /** Broker calls for one channel run one after another, in the order they were asked for. */
  private brokerOp(channel: string, op: () => Promise<void>): Promise<void> {
    const previous = this.brokerOps.get(channel) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(op);
    this.brokerOps.set(channel, next);
    const forget = (): void => {
      if (this.brokerOps.get(channel) === next) this.brokerOps.delete(channel);
    };
    next.then(forget, forget);
    return next;
  }
}

/** The publication with its id parsed, once per message, so sessions compare numbers. Ids that are not Herald's stay opaque. */
export function withPosition(publication: Publication): Publication {
  const position = publication.id === undefined ? undefined : parseMessageId(publication.id);
  return position ? { ...publication, position } : publication;
}
