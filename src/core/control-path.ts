/**
 * The node-to-node control path: small JSON messages on one reserved broker channel (NODE_CONTROL_CHANNEL) that
 * every node subscribes. It rides the node's existing broker connections (no extra Redis connection), keeps no
 * history, and no client can reach it (client channel names reject control characters). The admin dashboard uses
 * it to share stats snapshots and to disconnect a client held by another node; the server API (issue 10) can send
 * its own message types the same way.
 *
 * Delivery is the broker's: at most once, and nothing while the broker is down. Messages are fire and forget;
 * whoever needs an answer sends a request id and waits a bounded time (AdminChannelQuery does).
 *
 * Trust: anything that can PUBLISH on the Redis server can send these messages, as it can publish to any channel.
 * Redis is inside the trust boundary (docs/security.md); what arrives is still parsed defensively and bounded.
 */
import { NODE_CONTROL_CHANNEL, type Broker, type Publication } from '../broker/broker.js';
import type { Logger } from '../util/log.js';

/** A message larger than this is dropped unread (a stats snapshot is ~2 KB). */
export const MAX_CONTROL_BYTES = 64 * 1024;

export interface ControlMessage {
  /** What the message is, e.g. `stats`, `disconnect`. */
  readonly type: string;
  /** The sending node's id. */
  readonly from: string;
  /** The one node it is for; absent: every node. */
  readonly to?: string;
  /** The message's own fields, checked by its handler. */
  readonly body: Record<string, unknown>;
}

export type ControlHandler = (message: ControlMessage) => void;

export class ControlPath {
  private readonly handlers = new Map<string, ControlHandler>();
  private subscribed = false;
  private subscribing: Promise<void> | undefined;
  /** Messages dropped as malformed, oversized or of an unknown type (a counter for tests and logs). */
  dropped = 0;

  constructor(
    private readonly broker: Broker,
    readonly nodeId: string,
    private readonly log: Logger,
  ) {}

  /**
   * Subscribe the control channel. A broker that is down at start-up refuses; `retry` (the node's ticker) tries
   * again until it took, and the broker itself restores it after a reconnect (its channel set is the truth).
   */
  start(): Promise<void> {
    this.subscribing ??= this.broker.subscribe([NODE_CONTROL_CHANNEL]).then(
      () => {
        this.subscribed = true;
        this.subscribing = undefined;
        for (const l of this.readyListeners) l();
      },
      (err: unknown) => {
        this.subscribing = undefined;
        this.log.debug('control channel not subscribed yet', { err: String(err) });
      },
    );
    return this.subscribing;
  }

  /** Called on the node's ticker: subscribe if an earlier attempt failed. */
  retry(): void {
    if (!this.subscribed) void this.start();
  }

  private readonly readyListeners: (() => void)[] = [];

  /** Run `listener` when the control channel is subscribed (node-stats announces the node to its peers then). */
  onSubscribed(listener: () => void): void {
    this.readyListeners.push(listener);
  }

  get isSubscribed(): boolean {
    return this.subscribed;
  }

  /** Handle messages of `type` from other nodes (one handler per type). */
  on(type: string, handler: ControlHandler): void {
    this.handlers.set(type, handler);
  }

  /** Send to every other node, or to one (`to`). Rejects like Broker.publish (e.g. `unavailable` while it is down). */
  async send(type: string, body: Record<string, unknown>, to?: string): Promise<void> {
    const message: ControlMessage = { type, from: this.nodeId, ...(to === undefined ? {} : { to }), body };
    const data = JSON.stringify(message);
    if (Buffer.byteLength(data) > MAX_CONTROL_BYTES) throw new Error(`control message ${type} over ${MAX_CONTROL_BYTES} bytes`);
    await this.broker.publish(NODE_CONTROL_CHANNEL, data);
  }

  /** The node's broker handler passes every publication on the control channel here. */
  receive(publication: Publication): void {
    const message = parseControl(publication.data);
    if (!message) {
      this.dropped++;
      return;
    }
    // A node hears its own messages too (Redis echoes them; the memory broker delivers them): they are not news.
    if (message.from === this.nodeId || (message.to !== undefined && message.to !== this.nodeId)) return;
    const handler = this.handlers.get(message.type);
    if (!handler) {
      this.dropped++;
      return;
    }
    try {
      handler(message);
    } catch (err) {
      this.dropped++;
      this.log.warn('control message failed', { type: message.type, from: message.from, err: String(err) });
    }
  }
}

const NODE_ID = /^[0-9a-z]{1,32}$/;
const TYPE = /^[a-z][a-z0-9_.-]{0,31}$/;

/** The message in `data`, or undefined when it is not a well-formed control message. */
export function parseControl(data: string): ControlMessage | undefined {
  if (data.length > MAX_CONTROL_BYTES) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(data);
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const { type, from, to, body } = raw as Record<string, unknown>;
  if (typeof type !== 'string' || !TYPE.test(type)) return undefined;
  if (typeof from !== 'string' || !NODE_ID.test(from)) return undefined;
  if (to !== undefined && (typeof to !== 'string' || !NODE_ID.test(to))) return undefined;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  return { type, from, ...(to === undefined ? {} : { to }), body: body as Record<string, unknown> };
}
