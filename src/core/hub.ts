/**
 * The Hub: which local subscribers listen to which channel. One broker subscription per channel per node,
 * reference-counted: the first local subscriber of a channel subscribes the node at the broker, the last one
 * leaving unsubscribes it.
 *
 * Fan-out: subscribers of a channel are grouped by (wire format, channel label). A publication is encoded once per
 * group and the very same Buffer is handed to every member; nothing is allocated per subscriber here.
 */
import type { Broker, BrokerHandler } from '../broker/broker.js';
import type { Publication } from '../protocol/publication.js';
import { HeraldError } from '../errors.js';
import type { FrameEncoder } from '../protocol/frames.js';
import { parseMessageId } from '../protocol/message-id.js';
import type { Logger } from '../util/log.js';

/** Told of a publication's fan-out: its channel, the frames handed to members, and the seconds that took. */
export type FanOutObserver = (channel: string, delivered: number, seconds: number) => void;

/** Told when a channel gets its first local member (`occupied` true) and when its last one leaves (false). */
export type OccupancyObserver = (channel: string, occupied: boolean) => void;

/** Something that receives frames: a Session. */
export interface HubMember {
  /** `label` is the name the member joined the channel under (a session may hold one channel under two). */
  send(frame: Buffer, publication: Publication, label: string): void;
}

/**
 * Subscribers of one channel that receive identical bytes. Most channels have one subscriber (a user's own
 * channel), so a lone member is held directly and a Set is made only for the second: an empty Set or Map costs
 * more memory than the subscriber's own state.
 */
interface Group {
  readonly encoder: FrameEncoder;
  readonly label: string;
  one: HubMember | undefined;
  many: Set<HubMember> | undefined;
  count: number;
}

interface ChannelEntry {
  /** Usually one group; an array, searched linearly, is leaner than a Map keyed by a built string. */
  groups: Group[];
  size: number;
  /** Pending while the broker subscription made for this entry is being set up; cleared once live. */
  ready: Promise<void> | undefined;
  /** Publications since the last `takeBusiest` (the admin page's busiest channels). */
  recent: number;
}

/** What `takeBusiest` reports per channel. */
export interface ChannelActivity {
  readonly channel: string;
  /** Publications delivered here since the previous call. */
  readonly messages: number;
  /** Local subscribers now. */
  readonly subscribers: number;
}

/** Channels remembered as active between two `takeBusiest` calls; past it the rest are found by a full scan. */
const MAX_TOUCHED = 10_000;

export class Hub implements BrokerHandler {
  private readonly channels = new Map<string, ChannelEntry>();
  /** Per channel, the tail of its chain of broker subscribe/unsubscribe calls, so they reach the broker in order. */
  private readonly brokerOps = new Map<string, Promise<void>>();
  private members = 0;
  /** Frames handed to members since start (a counter for /metrics). */
  deliveries = 0;
  /** Told once per publication that had local members: its channel, frames written, and seconds it took. */
  private fanOutObserver: FanOutObserver | undefined;
  /** Publications delivered to at least one local member since start (a counter for /metrics). */
  publications = 0;
  /** Channels published to since the last `takeBusiest`, each once (bounded by MAX_TOUCHED). */
  private touched: string[] = [];
  private touchedOverflow = false;
  /** Set by the node when someone (webhooks) wants to know; called on join and leave only, never on fan-out. */
  occupancyObserver: OccupancyObserver | undefined;

  constructor(private readonly broker: Broker, private readonly log: Logger) {}

  /**
   * Add a member to a channel. Resolves once the node's broker subscription for the channel is live, so anything
   * published afterwards reaches the member. Rejects with `unavailable` (and leaves nothing behind) if the broker
   * cannot subscribe.
   */
  async join(channel: string, label: string, encoder: FrameEncoder, member: HubMember): Promise<void> {
    let entry = this.channels.get(channel);
    if (!entry) {
      const created: ChannelEntry = { groups: [], size: 0, ready: undefined, recent: 0 };
      const ready = this.brokerOp(channel, () => this.broker.subscribe([channel]));
      created.ready = ready;
      ready.then(
        () => {
          if (created.ready === ready) created.ready = undefined;
        },
        () => undefined,
      );
      this.channels.set(channel, (entry = created));
      this.occupancyObserver?.(channel, true);
    }
    let group = findGroup(entry, encoder, label);
    if (!group) {
      group = { encoder, label, one: undefined, many: undefined, count: 0 };
      entry.groups = entry.groups.concat([group]);
    }
    if (!addMember(group, member)) return entry.ready;
    entry.size++;
    this.members++;
    if (!entry.ready) return;
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
    const group = findGroup(entry, encoder, label);
    if (!group || !removeMember(group, member)) return;
    entry.size--;
    this.members--;
    if (group.count === 0) entry.groups.splice(entry.groups.indexOf(group), 1);
    if (entry.size === 0) {
      this.channels.delete(channel);
      this.occupancyObserver?.(channel, false);
      this.brokerOp(channel, () => this.broker.unsubscribe([channel])).catch((err: unknown) => {
        this.log.warn('broker unsubscribe failed', { channel, err: String(err) });
      });
    }
  }

  /** Broker handler: deliver a publication to every local member of its channel. */
  onPublication(publication: Publication): void {
    const entry = this.channels.get(publication.channel);
    if (!entry) return;
    // Timed once per publication (two clock reads), never per member.
    const started = this.fanOutObserver ? performance.now() : 0;
    this.publications++;
    if (entry.recent++ === 0) {
      if (this.touched.length < MAX_TOUCHED) this.touched.push(publication.channel);
      else this.touchedOverflow = true;
    }
    if (publication.id !== undefined && publication.position === undefined) publication = withPosition(publication);
    let delivered = 0;
    for (const group of entry.groups) {
      const frame = group.encoder.encode(publication, group.label);
      if (group.one) group.one.send(frame, publication, group.label);
      else if (group.many) for (const member of group.many) member.send(frame, publication, group.label);
      delivered += group.count;
    }
    this.deliveries += delivered;
    this.fanOutObserver?.(publication.channel, delivered, (performance.now() - started) / 1000);
  }

  /** Observe every fan-out (metrics): one call per publication that reached local members. */
  observeFanOut(observer: FanOutObserver): void {
    this.fanOutObserver = observer;
  }

  /**
   * The `limit` channels with the most publications since the previous call, and reset the counts. Costs the number
   * of channels published to meanwhile (not all channels), so a node-wide once-a-second call stays cheap.
   */
  takeBusiest(limit: number): ChannelActivity[] {
    const names = this.touchedOverflow ? [...this.channels.keys()] : this.touched;
    this.touched = [];
    this.touchedOverflow = false;
    const found: ChannelActivity[] = [];
    for (const channel of names) {
      const entry = this.channels.get(channel);
      if (!entry || entry.recent === 0) continue;
      found.push({ channel, messages: entry.recent, subscribers: entry.size });
      entry.recent = 0;
    }
    found.sort((a, b) => b.messages - a.messages || b.subscribers - a.subscribers);
    return found.slice(0, limit);
  }

  /** Channels with at least one local member. */
  channelCount(): number {
    return this.channels.size;
  }

  /** Channels with at least one local member (the Pusher API's channel list, the server API's `channels`). */
  channelNames(): IterableIterator<string> {
    return this.channels.keys();
  }

  /** Local members of one channel (namespaces' `maxSubscribers`). */
  memberCount(channel: string): number {
    return this.channels.get(channel)?.size ?? 0;
  }

  /** Local members of one channel, in every group (a member holding it under two labels comes twice). */
  *membersOf(channel: string): IterableIterator<HubMember> {
    const entry = this.channels.get(channel);
    if (!entry) return;
    for (const group of entry.groups) {
      if (group.one) yield group.one;
      else if (group.many) yield* group.many;
    }
  }

  /**
   * Each (wire format, label) group of a channel's local members: what a non-message frame (presence's join and
   * leave) needs to encode once per group, as the fan-out does.
   */
  forEachGroup(channel: string, fn: (label: string, members: Iterable<HubMember>) => void): void {
    const entry = this.channels.get(channel);
    if (!entry) return;
    for (const group of [...entry.groups]) {
      if (group.one) fn(group.label, [group.one]);
      else if (group.many) fn(group.label, [...group.many]);
    }
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

function findGroup(entry: ChannelEntry, encoder: FrameEncoder, label: string): Group | undefined {
  for (const g of entry.groups) if (g.label === label && g.encoder.name === encoder.name) return g;
  return undefined;
}

/** Returns false when the member was already there. */
function addMember(group: Group, member: HubMember): boolean {
  if (group.one === member || group.many?.has(member)) return false;
  if (group.many) group.many.add(member);
  else if (group.one) {
    group.many = new Set([group.one, member]);
    group.one = undefined;
  } else group.one = member;
  group.count++;
  return true;
}

/** Returns false when the member was not there. */
function removeMember(group: Group, member: HubMember): boolean {
  if (group.one === member) group.one = undefined;
  else if (!group.many?.delete(member)) return false;
  group.count--;
  return true;
}

/** The publication with its id parsed, once per message, so sessions compare numbers. Ids that are not Herald's stay opaque. */
export function withPosition(publication: Publication): Publication {
  const position = publication.id === undefined ? undefined : parseMessageId(publication.id);
  return position ? { ...publication, position } : publication;
}
