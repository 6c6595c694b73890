/**
 * Reading what a client missed: one channel's history after a position, judged for completeness. Shared by every
 * transport (via HeraldNode.openSession and the node's reconnect and gap recovery); the Session applies the outcome.
 */
import { hasHistory, type Broker, type HistoryPolicy } from '../broker/broker.js';
import type { ReloadReason } from '../protocol/frames.js';
import type { StreamPosition } from '../protocol/message-id.js';
import type { RecoveryOutcome } from './session.js';

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
  const { position, publications } = await broker.history(channel, { since, limit: policy.size, policy });
  if (!since) return unknownReason ? { publications: [], position, reload: unknownReason } : { publications: [], position };
  if (since.epoch !== position.epoch || since.offset > position.offset) {
    return { publications: [], position, reload: 'epoch' };
  }
  if (since.offset === position.offset) return { publications: [], position };
  const first = publications[0]?.position;
  if (!first || first.epoch !== since.epoch || first.offset !== since.offset + 1) {
    return { publications: [], position, reload: 'expired' };
  }
  // Contiguous from `since`; if a limit cut the tail, the position is the last one delivered and the live stream's
  // next offset reveals the rest as a gap to read again.
  const last = publications[publications.length - 1]?.position;
  const complete = publications.length === position.offset - since.offset;
  return { publications, position: complete ? position : last };
}
