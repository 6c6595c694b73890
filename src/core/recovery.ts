/**
 * Reading what a client missed: one channel's history after a position, judged for completeness. Shared by every
 * transport (via HeraldNode.openSession and the node's reconnect and gap recovery); `fitReplay` fits it to a client's
 * queue, and the session's ChannelCursors apply it.
 */
import { hasHistory, type Broker, type HistoryPolicy } from '../broker/broker.js';
import type { Publication } from '../protocol/publication.js';
import type { ReloadReason } from '../protocol/frames.js';
import type { StreamPosition } from '../protocol/message-id.js';
import type { RecoveryOutcome } from './channel-cursors.js';

/**
 * What the client at `since` (undefined: no position) missed on `channel`. `unknownReason`: when set, a client
 * without a position is told to reload for that reason (it may have missed something, and nothing says what).
 * Rejects when the broker cannot be read (the caller decides: refuse the connection, or tell the client to reload).
 */
export async function readMissed(
  broker: Broker,
  policy: HistoryPolicy | undefined,
  channel: string,
  since: StreamPosition | undefined,
  unknownReason?: ReloadReason,
): Promise<RecoveryOutcome> {
  if (!policy || !hasHistory(broker)) {
    const reason = since ? 'no_history' : unknownReason;
    return reason ? { publications: [], reload: reason } : { publications: [] };
  }
  const read = await broker.history(channel, { since, limit: policy.size, policy });
  const { position, publications } = read;
  if (!since) return unknownReason ? { publications: [], position, reload: unknownReason } : { publications: [], position };
  if (since.epoch !== position.epoch) {
    // A read stamp the broker vouches for: nothing was missed before the current epoch, which is read from its start.
    if (read.stampHolds) return contiguous({ offset: 0, epoch: position.epoch }, position, publications);
    // Another history generation: whatever followed `since` in the old one cannot be replayed. The client is told
    // to reload, then gets the new epoch's kept messages (from its start where they are all kept).
    return reloadThen('epoch', position, publications);
  }
  if (since.offset > position.offset) return { publications: [], position, reload: 'epoch' };
  return contiguous(since, position, publications);
}

/** The messages after `since` (same epoch as `position`) when they run on from it, else a reload. */
function contiguous(since: StreamPosition, position: StreamPosition, publications: readonly Publication[]): RecoveryOutcome {
  if (since.offset === position.offset) return { publications: [], position };
  const first = publications[0]?.position;
  if (!first || first.epoch !== since.epoch || first.offset !== since.offset + 1) {
    return { publications: [], position, reload: 'expired' };
  }
  return { publications, position: reached(since, position, publications) };
}

/** A reload notice, then the current epoch's kept messages: the notice's id is just before the first of them. */
function reloadThen(reason: ReloadReason, position: StreamPosition, publications: readonly Publication[]): RecoveryOutcome {
  const first = publications[0]?.position;
  if (!first || first.epoch !== position.epoch) return { publications: [], position, reload: reason };
  const reloadAt: StreamPosition = { offset: first.offset - 1, epoch: position.epoch };
  return { publications, position: reached(reloadAt, position, publications), reload: reason, reloadAt };
}

/**
 * Where delivering `publications` (contiguous from `from`) leaves the client: the channel's position when they reach
 * it; if a limit cut the tail, the last one delivered, and the live stream's next offset reveals the rest as a gap
 * to read again.
 */
function reached(from: StreamPosition, position: StreamPosition, publications: readonly Publication[]): StreamPosition | undefined {
  const last = publications[publications.length - 1]?.position;
  return publications.length === position.offset - from.offset ? position : last;
}

/** What `fitReplay` needs to know of the client. */
export interface ReplayRoom {
  /** How many of these publications (oldest first) fit the client's queue beside what it holds already. */
  fitting(publications: readonly Publication[]): number;
  /** The replay may be cut after the messages that fit (`/poll`: the next poll reads on from the answer's cursor). */
  readonly inPieces: boolean;
  /** The client holds frames not sent yet (a poll answer holding another channel's replay). */
  hasUnsent(): boolean;
}

/**
 * A replay must fit the client's queue (`maxQueueBytes`) beside what it holds already. On `/poll` one that does not
 * is cut after the messages that fit: the answer's cursor stands at the last of them, and the next poll reads on
 * from there. On a stream it is replaced by a `reload` `oversized` from the position the history read reached: the
 * client reloads that channel's state and continues live, as Centrifugo answers a position it cannot recover.
 * Sending a stream's replay in pieces as its socket drains was the other choice; it would hold the channel's live
 * messages, and the queue memory, for as long as the slowest client takes, which is what the bound prevents.
 * A poll that cannot take even the first message (and holds nothing else) gets the reload too, so it never polls in
 * place.
 */
export function fitReplay(outcome: RecoveryOutcome, room: ReplayRoom): RecoveryOutcome {
  if (outcome.reload || outcome.publications.length === 0) return outcome;
  const n = room.fitting(outcome.publications);
  if (n === outcome.publications.length) return outcome;
  // A poll whose answer holds something already (another channel's replay) leaves this channel where it was.
  if (room.inPieces && (n > 0 || room.hasUnsent())) {
    const publications = outcome.publications.slice(0, n);
    return { publications, position: publications[n - 1]?.position };
  }
  const last = outcome.publications[outcome.publications.length - 1]?.position;
  return { publications: [], position: outcome.position ?? last, reload: 'oversized' };
}
