/**
 * Where one session's client stands on each of its channels, and the live messages held while a channel's history is
 * read: the resume state machine of docs/protocol.md ("Message ids and resume"), with no socket and no timer.
 *
 * Per channel label it remembers the position of the last message delivered. A live message is delivered when it
 * follows on; dropped when it was delivered already; held, with a recovery asked for, when its offset skips ahead
 * (a loss: a broker reconnect) or its epoch began before it. `hold` starts holding a label's live messages (a resume,
 * a broker outage); `release` applies what the history read gave: a reload notice where the client must reload, the
 * missed messages, then the held live messages beyond what was delivered.
 *
 * What to write is said through a `CursorOutput` passed to each call (the Session: it encodes and writes), so one
 * cursor set costs two fields per connection and the tests can record every decision.
 */
import type { ReloadReason } from '../protocol/frames.js';
import { formatMessageId, isReadStamp, type StreamPosition } from '../protocol/message-id.js';
import type { Publication } from '../protocol/publication.js';

/** What the cursors decided to tell the client, in order. Positions are already moved when a call is made. */
export interface CursorOutput {
  /**
   * Deliver a message on `label`: `frame` is the live frame (encoded once for every subscriber); undefined for a
   * message read from history (the output encodes it). Returns false when this client must not get it (excluded):
   * its position moves all the same.
   */
  message(label: string, publication: Publication, frame: Buffer | undefined): boolean;
  /** The client must reload `label`: what it missed cannot be replayed. `at` is its position from now on. */
  reload(label: string, reason: ReloadReason, at: StreamPosition | undefined): void;
  /** A recovery moved `label`'s position without delivering a message (resume mode announces it). */
  position(label: string, at: StreamPosition): void;
  /**
   * A live message on `label` revealed a loss (`gap`: offsets skipped; `epoch`: a new generation that began before
   * it). The label is held already; the output reads its history and calls `release`. Absent: nobody can read
   * history, and the message is delivered as it is.
   */
  readonly lost?: (label: string, cause: 'gap' | 'epoch') => void;
}

/** What reading a channel's history gave, as `release` applies it. */
export interface RecoveryOutcome {
  /** Messages to deliver first (after the reload notice, if any), oldest first: the ones the client missed. */
  readonly publications: readonly Publication[];
  /** The channel's position after them; undefined when unknown. */
  readonly position?: StreamPosition;
  /** Set when the missed messages cannot be replayed: the client is told to reload the channel. */
  readonly reload?: ReloadReason;
  /** Where the reload puts the client (the notice's id): just before `publications`; `position` when absent. */
  readonly reloadAt?: StreamPosition;
}

interface Held {
  readonly frame: Buffer;
  readonly publication: Publication;
}

/** One channel label: where the client stands, and live messages held while history is read. */
interface Cursor {
  readonly label: string;
  position: StreamPosition | undefined;
  held: Held[] | undefined;
}

export class ChannelCursors {
  /** An array, not a Map: most sessions hold one channel, and an empty Map costs more than the cursor itself. */
  private list: Cursor[] = [];
  /**
   * Bytes held. A subclass may count its own held frames here too (the Session: frames before its sink is attached),
   * so one counter per connection serves both.
   */
  protected bytes = 0;

  /** Bytes of frames held: live frames while channels recover (they count against the client's queue bound). */
  get heldBytes(): number {
    return this.bytes;
  }

  /** Start tracking a label (the session joins its channel), at `position` when the client resumes from one. */
  track(label: string, position?: StreamPosition): void {
    if (!this.find(label)) this.add(label, position);
  }

  /** Forget a label, with any messages held for it. */
  untrack(label: string): void {
    const cursor = this.find(label);
    if (!cursor) return;
    if (cursor.held) for (const h of cursor.held) this.bytes -= h.frame.length;
    this.list.splice(this.list.indexOf(cursor), 1);
  }

  /** The last position delivered on a label, if known. */
  positionOf(label: string): StreamPosition | undefined {
    return this.find(label)?.position;
  }

  /** Is `label` holding its live messages (a recovery under way)? */
  isHolding(label: string): boolean {
    return this.find(label)?.held !== undefined;
  }

  /** Hold `label`'s live messages from now until `release`. Returns false when it is held already. */
  hold(label: string): boolean {
    const cursor = this.find(label) ?? this.add(label, undefined);
    if (cursor.held) return false;
    cursor.held = [];
    return true;
  }

  /**
   * A live message on `label`: `held` (kept for a recovery: the caller checks its queue bound), `taken` (delivered,
   * or dropped as delivered already), or `untracked` (nothing is known of `label`: the caller sends it as it is).
   */
  receive(label: string, frame: Buffer, publication: Publication, out: CursorOutput): 'held' | 'taken' | 'untracked' {
    const cursor = this.find(label);
    if (!cursor) return 'untracked';
    if (cursor.held) {
      cursor.held.push({ frame, publication });
      this.bytes += frame.length;
      return 'held';
    }
    return this.deliverLive(cursor, frame, publication, out) ? 'held' : 'taken';
  }

  /**
   * Apply a history read to a held label: tell the client to reload where it must, deliver what was missed (after
   * a reload: the new epoch's messages), then the live messages held meanwhile, skipping those already delivered.
   * `fresh`: the client had no position (it gets none replayed, and keeps every live message held since it joined).
   * Nothing happens when `label` is not held (a recovery applied twice, or the label left meanwhile).
   */
  release(label: string, outcome: RecoveryOutcome, fresh: boolean, out: CursorOutput): void {
    const cursor = this.find(label);
    if (!cursor?.held) return;
    const held = cursor.held;
    cursor.held = undefined;
    for (const h of held) this.bytes -= h.frame.length;
    const before = cursor.position;
    let told = false;
    const reloadAt = outcome.reloadAt;
    // Two recoveries overlapped and this read is the older one: the client already stands in the new epoch.
    const toldBefore = reloadAt && before && before.epoch === reloadAt.epoch && before.offset >= reloadAt.offset;
    if (outcome.reload && !toldBefore) {
      cursor.position = reloadAt ?? outcome.position;
      out.reload(label, outcome.reload, cursor.position);
      told = true;
    }
    for (const p of outcome.publications) {
      const at = cursor.position;
      // Skip what was delivered already (a second recovery of the same channel read overlapping history).
      if (p.position && at && at.epoch === p.position.epoch && p.position.offset <= at.offset) continue;
      if (p.position) cursor.position = p.position;
      if (out.message(label, p, undefined)) told = true;
    }
    let position = outcome.position;
    const first = held[0]?.publication.position;
    // A fresh client keeps every live message held since it joined, even those the read also saw.
    if (fresh && position && first && first.epoch === position.epoch && first.offset <= position.offset) {
      position = { offset: first.offset - 1, epoch: first.epoch };
    }
    if (position && (!cursor.position || cursor.position.epoch !== position.epoch || cursor.position.offset < position.offset)) {
      cursor.position = position;
    }
    if (!told && cursor.position && (!before || formatMessageId(before) !== formatMessageId(cursor.position))) {
      out.position(label, cursor.position);
    }
    for (let i = 0; i < held.length; i++) {
      if (cursor.held) {
        // A held message revealed another gap: the rest waits for that recovery.
        for (let j = i; j < held.length; j++) {
          cursor.held.push(held[j]!);
          this.bytes += held[j]!.frame.length;
        }
        break;
      }
      this.deliverLive(cursor, held[i]!.frame, held[i]!.publication, out);
    }
  }

  /** A live message on a cursor that is not holding; returns true when it started a recovery (now held). */
  private deliverLive(cursor: Cursor, frame: Buffer, publication: Publication, out: CursorOutput): boolean {
    const p = publication.position;
    if (p) {
      const last = cursor.position;
      if (last && last.epoch === p.epoch) {
        if (p.offset <= last.offset) return false; // already delivered (from history, or twice by the broker)
        if (p.offset > last.offset + 1 && out.lost) {
          // Messages between were lost on the way: hold this one and read them from history.
          this.holdFirst(cursor, frame, publication);
          out.lost(cursor.label, 'gap');
          return true;
        }
      } else if (last) {
        // A new history generation.
        if (p.offset === 1 && isReadStamp(last.epoch)) {
          // The client stood at a read stamp (the channel had no history) and this is the new epoch's first message:
          // nothing came between (the node holds every channel while its broker link is down, so a stamp here was
          // read on the link this message came by). No reload.
        } else if (p.offset > 1 && out.lost) {
          // The new epoch began before this message: hold it and read the epoch from its start (the client is told
          // to reload first, unless its read stamp vouches that it missed nothing).
          this.holdFirst(cursor, frame, publication);
          out.lost(cursor.label, 'epoch');
          return true;
        } else {
          // Whatever followed `last` in the old generation cannot be replayed.
          const before: StreamPosition = { offset: p.offset - 1, epoch: p.epoch };
          cursor.position = before;
          out.reload(cursor.label, 'epoch', before);
        }
      }
      cursor.position = p;
    }
    // A message this client must not get (its own, by socket_id) still moves its position: it is no gap.
    out.message(cursor.label, publication, frame);
    return false;
  }

  private holdFirst(cursor: Cursor, frame: Buffer, publication: Publication): void {
    cursor.held = [{ frame, publication }];
    this.bytes += frame.length;
  }

  private find(label: string): Cursor | undefined {
    for (const c of this.list) if (c.label === label) return c;
    return undefined;
  }

  private add(label: string, position: StreamPosition | undefined): Cursor {
    const cursor: Cursor = { label, position, held: undefined };
    // A fresh exact-size array: push() would reserve room for more on every held connection.
    this.list = this.list.concat([cursor]);
    return cursor;
  }
}
