/**
 * Message ids and cursors (docs/protocol.md, "Message ids and resume"). Pure: no I/O.
 *
 * A message id is `<offset>-<epoch>`: `offset` counts the channel's messages from 1 within one history generation,
 * `epoch` names that generation. When a channel's history is lost (it expired, or Redis restarted without
 * persistence) the next message starts a new epoch and offsets start again at 1, so an old id can never be mistaken
 * for a position in the new history.
 *
 * A position is the same text for "after this message"; `0-<epoch>` is the position before the first message.
 *
 * A channel that has no history has no epoch, and reading it creates none: its position is a read stamp,
 * `0-S<time><tag>` (`isReadStamp`), which says "nothing was published here when this was read". Only the broker that
 * issued it can judge it (the time and the tag are the broker's: docs/architecture.md "History and gap-free
 * resume"). Epochs that brokers create never start with `S`.
 *
 * A cursor is what a client sends back to resume a whole connection: the positions of its channels in the order the
 * connection lists them, joined by commas. An empty entry means "no position known: live only from now". With one
 * channel the cursor is simply the last message id, which is what SSE's Last-Event-ID holds.
 */
import { HeraldError } from '../errors.js';

export interface StreamPosition {
  /** Messages published in this epoch before and including the one at this position (0: none yet). */
  readonly offset: number;
  /** The history generation: 1 to 32 letters and digits. */
  readonly epoch: string;
}

const EPOCH = /^[0-9A-Za-z]{1,32}$/;
const OFFSET = /^(0|[1-9][0-9]{0,14})$/;

export function formatMessageId(position: StreamPosition): string {
  return `${position.offset}-${position.epoch}`;
}

/** The position a message id names, or undefined when the text is not a message id. */
export function parseMessageId(id: string): StreamPosition | undefined {
  const dash = id.indexOf('-');
  if (dash < 1) return undefined;
  const offset = id.slice(0, dash);
  const epoch = id.slice(dash + 1);
  if (!OFFSET.test(offset) || !EPOCH.test(epoch)) return undefined;
  return { offset: Number(offset), epoch };
}

/** True when `epoch` is a read stamp: the position of a channel without history (see above). */
export function isReadStamp(epoch: string): boolean {
  return epoch.charCodeAt(0) === 83; // 'S'
}

/**
 * Parse a cursor for a connection of `channels` channels. Throws 400 when it is malformed or lists another number
 * of channels: resuming the wrong channels silently would be worse than refusing.
 */
export function parseCursor(text: string, channels: number): (StreamPosition | undefined)[] {
  const parts = text.trim().split(',');
  if (parts.length !== channels) {
    throw new HeraldError(
      'bad_request',
      `the resume cursor lists ${parts.length} position(s) but the connection has ${channels} channel(s)`,
    );
  }
  return parts.map((p) => {
    const s = p.trim();
    if (s === '') return undefined;
    const position = parseMessageId(s);
    if (!position) throw new HeraldError('bad_request', 'malformed resume cursor: expected <offset>-<epoch>');
    return position;
  });
}
