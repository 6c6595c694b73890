/**
 * The primary's end of the inter-worker path (docs/architecture.md "Workers"). It listens on a Unix socket that only
 * this machine's workers reach (a private directory, mode 0700) and, with the embedded broker, hosts the one
 * MemoryBroker of the machine: message ids, history and idempotency keys have one source, so a client resumes on any
 * worker. Each worker subscribes the channels its clients use; a publication is encoded once and the same frame is
 * queued on every worker subscribed to its channel, in the order the broker delivered it. It also answers the
 * machine-wide questions: every process's metrics summed, and every worker's status.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { DEFAULTS } from '../config.js';
import {
  NODE_CONTROL_CHANNEL,
  type BrokerHandler,
  type HistoryBroker,
  type HistoryPolicy,
  type HistoryQuery,
  type Idempotency,
  type Publication,
} from '../broker/broker.js';
import { HeraldError } from '../errors.js';
import { checkMember, memberObject, validChannel } from '../presence/member.js';
import type { Logger } from '../util/log.js';
import { encodeFrame, FrameQueue, FrameReader, Op, type Frame } from './frames.js';
import { sumMetrics } from './metrics-sum.js';
import { MachinePresence } from './machine-presence.js';
import type { ClusterStatus, WorkerStatus } from './status.js';

/** Unsent bytes a worker may fall behind by before it is cut off (it restarts; its clients resume elsewhere). */
const MAX_LINK_BYTES = 256 * 1024 * 1024;
/** How long a metrics scrape waits for each worker's text. */
const METRICS_WAIT_MS = 2000;
/** Members per PRESENCE_GONE frame (a dead worker's members are told to the others in chunks). */
const GONE_CHUNK = 1000;
/** Members a PRESENCE_READ lists at most (Presence asks for at most its own limit, 10,000 by default). */
const MAX_READ_MEMBERS = 100_000;

interface Link {
  workerId: number;
  readonly socket: Socket;
  readonly queue: FrameQueue;
  readonly channels: Set<string>;
  status: WorkerStatus | undefined;
}

export interface BrokerHostOptions {
  readonly socketPath: string;
  /** The machine's broker (the embedded one); absent with Redis, where each worker is a node of its own. */
  readonly broker?: HistoryBroker;
  readonly log: Logger;
  /** Largest member info accepted from a worker (config.presenceMaxInfoBytes; its default when absent). */
  readonly presenceMaxInfoBytes?: number;
  /** The primary's own metrics text (its RSS counts too). */
  readonly ownMetrics: () => string;
  /** What the primary knows beside the workers' reports. */
  readonly machine: () => Omit<ClusterStatus, 'workers'>;
}

export class BrokerHost implements BrokerHandler {
  private readonly server: Server;
  private readonly links = new Set<Link>();
  /** channel → the workers subscribed to it. */
  private readonly subscribers = new Map<string, Set<Link>>();
  private readonly metricsWaits = new Map<number, { link: Link; done: (text: string | undefined) => void }>();
  private nextRid = 1;
  /** Every worker's presence members (the embedded broker's machine-wide presence). */
  private readonly presence = new MachinePresence<Link>();

  constructor(private readonly options: BrokerHostOptions) {
    this.server = createServer((socket) => this.accept(socket));
  }

  async start(): Promise<void> {
    await this.options.broker?.start(this);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.socketPath, () => resolve());
    });
  }

  /** The broker delivers: one frame, queued on every worker subscribed to the channel. */
  onPublication(p: Publication): void {
    const links = this.subscribers.get(p.channel);
    if (!links) return;
    const frame = encodeFrame([Op.PUB, p.channel, p.data, p.id ?? null, p.ts]);
    for (const link of links) link.queue.send(frame);
  }

  status(): ClusterStatus {
    const workers: WorkerStatus[] = [];
    for (const link of this.links) if (link.status) workers.push(link.status);
    workers.sort((a, b) => a.id - b.id);
    return { ...this.options.machine(), workers };
  }

  /** Tell every worker what the machine looks like now (a worker joined, left, or changed its state). */
  broadcastStatus(): void {
    const frame = encodeFrame([Op.CLUSTER, this.status()]);
    for (const link of this.links) link.queue.send(frame);
  }

  async close(): Promise<void> {
    for (const link of this.links) link.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.options.broker?.close();
  }

  private accept(socket: Socket): void {
    socket.setNoDelay(true);
    const link: Link = {
      workerId: 0,
      socket,
      channels: new Set(),
      status: undefined,
      queue: new FrameQueue(socket, MAX_LINK_BYTES, () => {
        this.options.log.warn('worker cut off: it fell behind the inter-worker path', { worker: link.workerId });
        socket.destroy();
      }),
    };
    this.links.add(link);
    const reader = new FrameReader((frame) => this.onFrame(link, frame));
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk);
      } catch (err) {
        this.options.log.warn('worker link closed: bad frame', { worker: link.workerId, err: String(err) });
        socket.destroy();
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => this.drop(link));
  }

  private drop(link: Link): void {
    if (!this.links.delete(link)) return;
    for (const wait of [...this.metricsWaits.values()]) if (wait.link === link) wait.done(undefined);
    const gone: string[] = [];
    for (const channel of link.channels) if (this.leave(link, channel)) gone.push(channel);
    if (gone.length > 0) void this.options.broker?.unsubscribe(gone);
    // A dead worker's channels that nobody else holds are vacated: another worker sends the webhooks.
    const teller = this.links.values().next().value;
    if (teller) for (const channel of gone) this.tellOccupancy(teller, channel, false);
    this.presenceGone(link);
    this.broadcastStatus();
  }

  /** Occupancy of the machine changed: `link` (the worker that made it so, or any) sends the webhooks. */
  private tellOccupancy(link: Link, channel: string, occupied: boolean): void {
    if (channel !== NODE_CONTROL_CHANNEL) link.queue.send(encodeFrame([Op.OCCUPANCY, channel, occupied]));
  }

  /**
   * A worker is gone (killed, crashed, cut off): its members leave at once, and the other workers send the leaves.
   * One of them (the first link) is told to report them too: it sends the webhooks (Pusher's member_removed), once.
   */
  private presenceGone(link: Link): void {
    const dropped = this.presence.drop(link);
    const reporter = this.links.values().next().value;
    for (let i = 0; i < dropped.length; i += GONE_CHUNK) {
      const events = dropped.slice(i, i + GONE_CHUNK).map((d) => [d.channel, memberObject(d.member), d.userEdge]);
      const frame = encodeFrame([Op.PRESENCE_GONE, events]);
      const reported = encodeFrame([Op.PRESENCE_GONE, events, true]);
      for (const other of this.links) other.queue.send(other === reporter ? reported : frame);
    }
  }

  /** A worker's presence write (a push, no answer): checked like any frame from outside. */
  private presenceWrite(link: Link, frame: Frame): void {
    const [op, channel, value] = frame;
    if (!validChannel(channel)) throw new Error('presence write without a valid channel');
    if (op === Op.PRESENCE_REMOVE) {
      if (typeof value !== 'string') throw new Error('presence remove without a client');
      this.presence.remove(link, channel, value);
      return;
    }
    const member = checkMember(value, this.options.presenceMaxInfoBytes ?? DEFAULTS.presenceMaxInfoBytes);
    if (!member) throw new Error('presence add without a valid member');
    this.presence.add(link, channel, member);
  }

  /** True when the channel has no subscribed worker left. */
  private leave(link: Link, channel: string): boolean {
    const set = this.subscribers.get(channel);
    if (!set) return false;
    set.delete(link);
    if (set.size > 0) return false;
    this.subscribers.delete(channel);
    return true;
  }

  private onFrame(link: Link, frame: Frame): void {
    const op = frame[0];
    const rid = frame[1];
    if (op === Op.HELLO) {
      link.workerId = typeof rid === 'number' ? rid : 0;
      return;
    }
    if (op === Op.STATUS) {
      const [, ready, draining, connections, pid] = frame;
      link.status = { id: link.workerId, pid: Number(pid) || 0, ready: ready === true, draining: draining === true, connections: Number(connections) || 0 };
      this.broadcastStatus();
      return;
    }
    if (op === Op.PRESENCE_ADD || op === Op.PRESENCE_REMOVE) {
      this.presenceWrite(link, frame);
      return;
    }
    if (typeof rid !== 'number') throw new Error('request without an id');
    if (op === Op.OK && this.metricsWaits.has(rid)) {
      this.metricsWaits.get(rid)?.done(typeof frame[2] === 'string' ? frame[2] : undefined);
      return;
    }
    this.answer(link, rid, this.handle(link, op, frame));
  }

  private answer(link: Link, rid: number, result: Promise<unknown>): void {
    result.then(
      (value) => link.queue.send(encodeFrame([Op.OK, rid, value ?? null])),
      (err: unknown) => {
        const code = err instanceof HeraldError ? err.code : 'internal';
        const message = err instanceof Error ? err.message : String(err);
        link.queue.send(encodeFrame([Op.ERR, rid, code, message]));
      },
    );
  }

  /** Async so that a bad field rejects (answered ERR); the broker calls still happen synchronously, in frame order. */
  private async handle(link: Link, op: unknown, frame: Frame): Promise<unknown> {
    if (op === Op.CLUSTER_METRICS) return this.clusterMetrics();
    if (op === Op.PRESENCE_READ) {
      const [, , channel, withMembers, limit] = frame;
      if (!validChannel(channel)) throw new HeraldError('bad_request', 'expected a channel');
      const max = typeof limit === 'number' && limit >= 0 ? Math.min(limit, MAX_READ_MEMBERS) : 0;
      const answer = this.presence.read(link, channel, withMembers === true, max);
      return { members: answer.members.map(memberObject), clients: answer.clients, total: answer.total };
    }
    const broker = this.options.broker;
    if (!broker) throw new HeraldError('unavailable', 'no embedded broker: each worker is a node on Redis');
    switch (op) {
      case Op.SUB: {
        const fresh: string[] = [];
        for (const channel of strings(frame[2])) {
          link.channels.add(channel);
          let set = this.subscribers.get(channel);
          if (!set) this.subscribers.set(channel, (set = new Set()));
          if (set.size === 0) {
            fresh.push(channel);
            this.tellOccupancy(link, channel, true);
          }
          set.add(link);
        }
        return broker.subscribe(fresh);
      }
      case Op.UNSUB: {
        const gone: string[] = [];
        for (const channel of strings(frame[2])) {
          if (link.channels.delete(channel) && this.leave(link, channel)) {
            gone.push(channel);
            this.tellOccupancy(link, channel, false);
          }
        }
        return broker.unsubscribe(gone);
      }
      case Op.PUBLISH: {
        const history = frame[4] as HistoryPolicy | null;
        const idempotency = frame[5] as Idempotency | null;
        return broker
          .publish(text(frame[2]), text(frame[3]), { ...(history ? { history } : {}), ...(idempotency ? { idempotency } : {}) })
          .then((r) => [r.id ?? null, r.replayed === true]);
      }
      case Op.HISTORY:
        return broker.history(text(frame[2]), frame[3] as HistoryQuery);
      case Op.REMOVE_HISTORY:
        return broker.removeHistory?.(text(frame[2]));
      default:
        throw new HeraldError('bad_request', `unknown op ${String(op)}`);
    }
  }

  /** Ask every worker for its metrics text, add the primary's, and sum them (a worker that does not answer in time is left out). */
  private async clusterMetrics(): Promise<string> {
    const asks: Promise<string | undefined>[] = [];
    for (const link of this.links) {
      if (link.workerId === 0) continue;
      const rid = this.nextRid++;
      asks.push(
        new Promise<string | undefined>((resolve) => {
          const timer = setTimeout(() => done(undefined), METRICS_WAIT_MS);
          const done = (value: string | undefined): void => {
            clearTimeout(timer);
            this.metricsWaits.delete(rid);
            resolve(value);
          };
          this.metricsWaits.set(rid, { link, done });
          link.queue.send(encodeFrame([Op.METRICS, rid]));
        }),
      );
    }
    const texts = (await Promise.all(asks)).filter((t): t is string => t !== undefined);
    return sumMetrics([this.options.ownMetrics(), ...texts]);
  }
}

function text(value: unknown): string {
  if (typeof value !== 'string') throw new HeraldError('bad_request', 'expected a string');
  return value;
}

function strings(value: unknown): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new HeraldError('bad_request', 'expected channel names');
  return value as string[];
}
