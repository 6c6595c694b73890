/**
 * A Session is one client connection as the core sees it: the channels it listens to, a wire format, and a sink
 * (the transport's socket). It holds no timer of its own: the node's single ticker drives heartbeats and expiry.
 *
 * Until the transport attaches its sink (after the response headers), frames are held in a bounded list, so nothing
 * published after the subscription went live is lost. Once attached, the socket's own write buffer is the outgoing
 * queue, bounded by `maxQueueBytes`: a client that stops reading is disconnected as "slow".
 */
import type { Publication } from '../broker/broker.js';
import type { DisconnectReason } from '../errors.js';
import type { StreamCodec } from '../protocol/frames.js';
import type { HubMember } from './hub.js';

/** Where a session's bytes go: the transport's adapter over a socket. */
export interface SessionSink {
  write(bytes: Buffer): void;
  /** Bytes written but not yet handed to the kernel. */
  bufferedBytes(): number;
  /** Write the last bytes (may be empty) and close gracefully. */
  end(last: Buffer | undefined): void;
  /** Close at once, sending nothing more. */
  destroy(): void;
  /** Called by the node's ticker once per heartbeat interval; the default writes the codec's heartbeat frame. */
  heartbeat?(): void;
  /**
   * End with a reason, for transports whose last word is not a frame of the codec (a WebSocket close code, a poll
   * answer). When absent, `end(codec.encodeDisconnect(reason))` is used.
   */
  close?(reason: DisconnectReason): void;
}

/** One channel a session listens to, and the name the client knows it by (a sealed key, or the channel itself). */
export interface SessionTarget {
  readonly channel: string;
  readonly label: string;
}

export interface SessionOptions {
  readonly transport: string;
  readonly remoteAddress: string;
  readonly maxQueueBytes: number;
  /** Milliseconds since the epoch when the client's credentials expire. */
  readonly expiresAt?: number;
}

/** What a session needs from its node: to leave the hub and be forgotten when it ends. */
export interface SessionOwner {
  sessionEnded(session: Session, reason: DisconnectReason | 'client_gone'): void;
}

let nextId = 1;

export class Session implements HubMember {
  readonly id = nextId++;
  readonly targets: SessionTarget[] = [];
  expiresAt: number | undefined;
  private sink: SessionSink | undefined;
  private held: Buffer[] | undefined = [];
  private heldBytes = 0;
  private ended = false;

  constructor(
    private readonly owner: SessionOwner,
    readonly codec: StreamCodec,
    readonly options: SessionOptions,
  ) {
    this.expiresAt = options.expiresAt;
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** Hub member: one frame for one of this session's channels. */
  send(frame: Buffer, _publication: Publication): void {
    this.write(frame);
  }

  /** Start writing to the socket: flush what was held since the subscription went live. */
  attach(sink: SessionSink): void {
    this.sink = sink;
    const held = this.held ?? [];
    this.held = undefined;
    this.heldBytes = 0;
    for (const frame of held) this.write(frame);
  }

  write(frame: Buffer): void {
    if (this.ended) return;
    if (this.sink) {
      this.sink.write(frame);
      if (this.sink.bufferedBytes() > this.options.maxQueueBytes) this.disconnect('slow');
      return;
    }
    this.held?.push(frame);
    this.heldBytes += frame.length;
    if (this.heldBytes > this.options.maxQueueBytes) this.disconnect('slow');
  }

  heartbeat(): void {
    if (this.ended || !this.sink) return;
    if (this.sink.heartbeat) this.sink.heartbeat();
    else this.write(this.codec.heartbeat);
  }

  /**
   * End the stream from the server side with a reason the client can act on. A slow client gets nothing more
   * (its queue is full); others get the codec's last frame.
   */
  disconnect(reason: DisconnectReason): void {
    if (this.ended) return;
    this.ended = true;
    if (this.sink) {
      if (reason === 'slow' || reason === 'dead_peer') this.sink.destroy();
      else if (this.sink.close) this.sink.close(reason);
      else this.sink.end(this.codec.encodeDisconnect(reason));
    }
    this.held = undefined;
    this.owner.sessionEnded(this, reason);
  }

  /** The client went away (socket closed or errored). */
  clientGone(): void {
    if (this.ended) return;
    this.ended = true;
    this.held = undefined;
    this.owner.sessionEnded(this, 'client_gone');
  }
}
