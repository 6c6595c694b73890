/**
 * A Session is one client connection as the core sees it: the channels it listens to, a wire format, and a sink
 * (the transport's socket). It holds no timer of its own: the node's single ticker drives heartbeats and expiry.
 *
 * Until the transport attaches its sink (after the response headers), frames are held in a bounded list, so nothing
 * published after the subscription went live is lost. Once attached, the socket's own write buffer is the outgoing
 * queue, bounded by `maxQueueBytes`: a client that stops reading is disconnected as "slow".
 *
 * Ending is two steps. `disconnect` ends the stream: the session leaves its channels at once and its reason is
 * written after what is already queued (a small frame past the bound, so the client learns why before the cut;
 * frames are whole buffers, so it never lands inside a message). The session stays counted against the node's
 * connection limits until the socket has closed (`clientGone`); the node's ticker destroys a socket that has not
 * closed `closeGraceMs` after its last words (`closeIfOverdue`). A session ended before its sink was attached (while
 * opening) says its last words on attach, so a client never gets a silent 200 or 101.
 *
 * Resume without gaps or duplicates (docs/protocol.md "Message ids and resume") is decided by ChannelCursors
 * (core/channel-cursors.ts, a pure state machine with its own unit tests), which the session extends: the session
 * is its output, encoding and writing what it decides. To recover a channel the session first holds that channel's live messages
 * (`beginRecovery`, while already joined to the hub), then the node reads history, and `endRecovery` fits the replay
 * to the queue and hands it to the cursors. Held messages count against `maxQueueBytes` like everything else.
 */
import type { Publication } from '../protocol/publication.js';
import type { DisconnectReason } from '../errors.js';
import type { CustomDisconnect, FrameEncoder, ReloadReason } from '../protocol/frames.js';
import { formatMessageId, type StreamPosition } from '../protocol/message-id.js';
import { ChannelCursors, type CursorOutput, type RecoveryOutcome } from './channel-cursors.js';
import type { HubMember } from './hub.js';
import { fitReplay } from './recovery.js';

export type { RecoveryOutcome } from './channel-cursors.js';

/**
 * Where a session's bytes go: the transport's adapter over a socket. Liveness and last words are the transport's
 * (an HTTP stream's heartbeat line and disconnect frame, a WebSocket ping and close code, a poll's answer): the
 * session only says when.
 */
export interface SessionSink {
  write(bytes: Buffer): void;
  /** Bytes written but not yet handed to the kernel. */
  bufferedBytes(): number;
  /** Close at once, sending nothing more. */
  destroy(): void;
  /** Called by the node's ticker once per heartbeat interval (the session has checked the peer still drains). */
  heartbeat(): void;
  /**
   * Bytes the socket has handed to the kernel so far. With it, the heartbeat also finds a peer that stopped draining
   * (gone without FIN while data was in flight, or no longer reading): see `Session.heartbeat`.
   */
  sentBytes?(): number;
  /** Say why the stream ends, after what is queued, and close gracefully. */
  close(reason: DisconnectReason, custom?: CustomDisconnect): void;
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
  /** The user behind the connection: the token's `sub`, or the auth hook's `user` (webhooks name it). */
  readonly user?: string;
  /** The user's info as JSON text (the token's `info` claim, or the auth hook's): presence members carry it. */
  readonly info?: string;
  /** The client asked for join and leave events on its presence channels (`joinLeave=1`; docs/presence.md). */
  readonly joinLeave?: boolean;
  /**
   * A replay too large for the queue may be cut after the messages that fit (`/poll`: the answer ends the session,
   * and the next poll continues from its cursor). Otherwise such a replay is a `reload` `oversized`.
   */
  readonly replayInPieces?: boolean;
  /**
   * Publications this session must not get though it holds their channel (a Pusher trigger's `socket_id`, a client
   * event's sender). One function shared by every session of a protocol; undefined for the others.
   */
  readonly exclude?: (publication: Publication, session: Session) => boolean;
  /** The protocol keeps this session's presence members itself (Pusher's channel_data), not the presence observer. */
  readonly ownPresence?: boolean;
}

/** What a session needs from its node: to leave the hub and be forgotten when it ends, and to recover a channel. */
export interface SessionOwner {
  /** The node's id, unique across a cluster (random per start): the prefix of every session id it hands out. */
  readonly nodeId: string;
  /** The stream ended: it must leave its channels. The socket may still be open (its last words in flight). */
  sessionEnded(session: Session, reason: DisconnectReason | 'client_gone'): void;
  /** The socket closed: the session no longer counts against the connection limits. */
  sessionClosed(session: Session): void;
  /**
   * A live message revealed a loss on `label`'s channel (`gap`: offsets skipped; `epoch`: a new history generation
   * that began before it): read its history (the session already holds live ones).
   */
  recoverGap?(session: Session, label: string, cause: 'gap' | 'epoch'): void;
  /** The client was told to reload a channel (for metrics: each one is a loss the client must repair). */
  reloadSent?(reason: ReloadReason): void;
  /** The time on the node's clock (util/clock.ts), which also runs the ticker that checks `closeIfOverdue`. */
  now(): number;
}

let nextSeq = 1;
/** Sessions store their opening time in seconds from here: a small integer, which V8 keeps unboxed. */
const EPOCH_MS = Date.now();

/**
 * A Session is its own ChannelCursors (extends, rather than holds one): one object per held connection instead of
 * two, which is 40-odd bytes on every idle client. The cursors' state stays private to ChannelCursors.
 */
export class Session extends ChannelCursors implements HubMember, CursorOutput {
  /** Unique within the process; the number behind `id`. */
  readonly seq = nextSeq++;
  private readonly openedSecond = Math.floor((Date.now() - EPOCH_MS) / 1000);
  /** Replaced, not pushed to, when it grows (see HeraldNode.subscribe). */
  targets: SessionTarget[] = [];
  expiresAt: number | undefined;
  private sink: SessionSink | undefined;
  private held: Buffer[] | undefined = [];
  /** `sink.sentBytes()` at the previous heartbeat. */
  private lastSent = -1;
  private ended = false;
  /** Why the server ended the stream; undefined while open, or when the client left first. */
  private endReason: DisconnectReason | undefined;
  /** When the last words went to the sink: the socket must close within `closeGraceMs` of it. */
  private closingSince: number | undefined;
  private closed = false;
  /** The cursor when the stream ended (its channels are gone by then): a poll answer still carries it. */
  private finalCursor: string | undefined;
  /** Resume mode (SSE, or a client that sent a cursor): position changes without a message are announced. */
  announcePositions = false;
  /** Join and leave events of presence channels go to this client (asked for; a `/ws` subscribe can ask later). */
  joinLeave: boolean;

  constructor(
    private readonly owner: SessionOwner,
    readonly codec: FrameEncoder,
    private opts: SessionOptions,
  ) {
    super();
    this.expiresAt = opts.expiresAt;
    this.joinLeave = opts.joinLeave === true;
  }

  /**
   * The client id: `<node id>-<seq in base 36>`, e.g. `k3f9q2-1z`. Short, unique across the nodes of a cluster, and
   * it names the node that holds the session, so a disconnect by id can be routed there. Built on demand rather
   * than stored: a string per held connection would cost memory on every idle client.
   */
  get id(): string {
    return `${this.owner.nodeId}-${this.seq.toString(36)}`;
  }

  /** Why the server ended the stream; undefined when the client left (or it is still open). */
  get endedBy(): DisconnectReason | undefined {
    return this.endReason;
  }

  /** Bytes the socket handed to the kernel so far, where the transport can tell (the access log). */
  sentBytes(): number | undefined {
    return this.sink?.sentBytes?.();
  }

  /** When the session opened (milliseconds since the epoch, to the second). */
  get openedAt(): number {
    return EPOCH_MS + this.openedSecond * 1000;
  }

  get isEnded(): boolean {
    return this.ended;
  }

  get options(): SessionOptions {
    return this.opts;
  }

  /**
   * The user behind the connection, learnt after it opened (a `/ws` `connect` frame's token): presence and the server
   * API's user calls see it from then on. Once set it does not change (a refresh keeps the subject).
   */
  identify(user: string | undefined, info: string | undefined): void {
    if (this.opts.user !== undefined || user === undefined) return;
    this.opts = { ...this.opts, user, ...(info !== undefined ? { info } : {}) };
  }

  /** Hub member: one frame for one of this session's channels. */
  send(frame: Buffer, publication: Publication, label: string): void {
    const taken = this.receive(label, frame, publication, this);
    if (taken === 'untracked') {
      if (!this.options.exclude?.(publication, this)) this.write(frame);
    } else if (taken === 'held' && this.heldBytes > this.options.maxQueueBytes) {
      this.disconnect('slow');
    }
  }

  /** The connection's cursor: every channel's position in target order (docs/protocol.md). */
  cursor(): string {
    if (this.finalCursor !== undefined) return this.finalCursor;
    let out = '';
    for (let i = 0; i < this.targets.length; i++) {
      if (i > 0) out += ',';
      const p = this.positionOf(this.targets[i]!.label);
      if (p) out += formatMessageId(p);
    }
    return out;
  }

  /** Hold `label`'s live messages from now until `endRecovery`. Returns false when it is already held. */
  beginRecovery(label: string): boolean {
    return this.hold(label);
  }

  /**
   * Apply a history read to a held label: the replay is first fitted to this client's queue (core/recovery.ts
   * `fitReplay`), then the cursors decide what the client is told (ChannelCursors.release). `fresh`: the client had
   * no position (it gets none replayed, and keeps every live message held since it joined).
   */
  endRecovery(label: string, outcome: RecoveryOutcome, fresh: boolean): void {
    if (this.ended || !this.isHolding(label)) return;
    const fitted = fitReplay(outcome, {
      fitting: (publications) => this.replayFitting(label, publications),
      inPieces: this.options.replayInPieces === true,
      hasUnsent: () => this.hasUnsent(),
    });
    this.release(label, fitted, fresh, this);
  }

  /** CursorOutput: a live frame (encoded once for every subscriber) or a message read from history. */
  message(label: string, publication: Publication, frame: Buffer | undefined): boolean {
    if (this.options.exclude?.(publication, this)) return false;
    const bytes = frame ?? this.codec.encode(publication, label);
    const wrap = this.codec.withCursor;
    this.write(wrap ? wrap(bytes, this.cursor()) : bytes);
    return true;
  }

  /** CursorOutput: the client must reload `label`. */
  reload(label: string, reason: ReloadReason, at: StreamPosition | undefined): void {
    this.owner.reloadSent?.(reason);
    this.write(this.codec.encodeReload(label, reason, idOf(at), this.cursor()));
  }

  /** CursorOutput: a recovery moved `label`'s position without a message; announced in resume mode. */
  position(label: string, at: StreamPosition): void {
    if (this.announcePositions) this.write(this.codec.encodePosition(label, formatMessageId(at), this.cursor()));
  }

  /** CursorOutput: a live message revealed a loss on `label` (held now): the node reads its history. */
  get lost(): ((label: string, cause: 'gap' | 'epoch') => void) | undefined {
    const owner = this.owner;
    return owner.recoverGap ? (label, cause) => owner.recoverGap!(this, label, cause) : undefined;
  }

  /** Start writing to the socket: flush what was held since the subscription went live. */
  attach(sink: SessionSink): void {
    this.sink = sink;
    if (this.ended) {
      // Ended while opening (e.g. its queue overflowed before the headers were out): the client still gets why.
      if (this.endReason !== undefined && !this.closed) this.sayLastWords(sink, this.endReason);
      else sink.destroy();
      return;
    }
    const held = this.held ?? [];
    this.held = undefined;
    for (const frame of held) this.bytes -= frame.length;
    for (const frame of held) this.write(frame);
  }

  /**
   * Drop the frames held before the sink is attached (a subscribe being retried after a broker outage: its replay
   * will be read again, and these would arrive twice). Nothing once attached: written frames are gone.
   */
  forgetHeld(): void {
    if (!this.held || this.held.length === 0) return;
    for (const frame of this.held) this.bytes -= frame.length;
    this.held = [];
  }

  /** Bytes waiting for this client: held (before attach, or while a channel recovers) and in the socket's queue. */
  queuedBytes(): number {
    return this.heldBytes + (this.sink?.bufferedBytes() ?? 0);
  }

  /** True when frames were written for this client and not sent yet (not counting messages held for recovery). */
  hasUnsent(): boolean {
    return (this.held?.length ?? 0) > 0 || (this.sink?.bufferedBytes() ?? 0) > 0;
  }

  /**
   * How many of `publications` (oldest first) can be replayed on `label` while this client's queue stays within
   * `maxQueueBytes`, with what it holds already and room for the response head and the lines after a replay?
   * (Encodes them to measure: a resume is rare, and exact sizes keep a fitting replay from ending as `slow`.)
   */
  replayFitting(label: string, publications: readonly Publication[]): number {
    let bytes = this.queuedBytes() + REPLAY_HEADROOM;
    const wrap = this.codec.withCursor;
    const cursor = wrap ? this.cursor() : '';
    for (let i = 0; i < publications.length; i++) {
      const frame = this.codec.encode(publications[i]!, label);
      bytes += wrap ? wrap(frame, cursor).length : frame.length;
      if (bytes > this.options.maxQueueBytes) return i;
    }
    return publications.length;
  }

  write(frame: Buffer): void {
    if (this.ended) return;
    if (this.sink) {
      this.sink.write(frame);
      if (this.sink.bufferedBytes() + this.heldBytes > this.options.maxQueueBytes) this.disconnect('slow');
      return;
    }
    if (!this.held) return;
    this.held.push(frame);
    this.bytes += frame.length;
    if (this.heldBytes > this.options.maxQueueBytes) this.disconnect('slow');
  }

  /**
   * Once per heartbeat interval, from the node's ticker. A peer whose socket kept bytes waiting through a whole
   * interval without handing a single one to the kernel has stopped draining: the kernel's send buffer stayed full, so
   * it is gone or not reading. It is freed as a dead peer before its queue would reach `maxQueueBytes`.
   */
  heartbeat(): void {
    if (this.ended || !this.sink) return;
    const sent = this.sink.sentBytes?.();
    if (sent !== undefined) {
      const stalled = sent === this.lastSent && this.sink.bufferedBytes() > 0;
      this.lastSent = sent;
      if (stalled) {
        this.disconnect('dead_peer');
        return;
      }
    }
    this.sink.heartbeat();
  }

  /**
   * End the stream from the server side with a reason the client can act on: its channels are left now, and the
   * reason follows what is queued (a slow client too: it gets whole messages, then `slow`, within the grace).
   * A dead peer is cut at once: it drains nothing, so nothing more can reach it.
   */
  disconnect(reason: DisconnectReason, custom?: CustomDisconnect): void {
    if (this.ended) return;
    this.ended = true;
    this.endReason = reason;
    this.finalCursor = this.cursor();
    this.owner.sessionEnded(this, reason);
    this.held = undefined;
    // (A session ended before its sink is attached says the reason's own code on attach: an operator's code is not kept.)
    if (this.sink) this.sayLastWords(this.sink, reason, custom);
  }

  private sayLastWords(sink: SessionSink, reason: DisconnectReason, custom?: CustomDisconnect): void {
    if (reason === 'dead_peer') {
      sink.destroy();
      return;
    }
    this.closingSince = this.owner.now();
    sink.close(reason, custom);
  }

  /** From the node's ticker: a socket still open `graceMs` after its last words is destroyed. */
  closeIfOverdue(now: number, graceMs: number): void {
    if (this.closingSince !== undefined && !this.closed && now - this.closingSince >= graceMs) this.sink?.destroy();
  }

  /** The socket closed (the client went away, or the server's close completed). */
  clientGone(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.ended) {
      this.ended = true;
      this.finalCursor = this.cursor();
      this.held = undefined;
      this.owner.sessionEnded(this, 'client_gone');
    }
    this.owner.sessionClosed(this);
  }
}

/** Queue room a replay leaves free: the response head, and the position or reload lines that may follow it. */
const REPLAY_HEADROOM = 1024;

function idOf(position: StreamPosition | undefined): string {
  return position ? formatMessageId(position) : '';
}
