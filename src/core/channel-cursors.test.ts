/** The resume state machine on its own: every decision ChannelCursors makes, recorded through its output. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatMessageId, type StreamPosition } from '../protocol/message-id.js';
import type { Publication } from '../protocol/publication.js';
import type { ReloadReason } from '../protocol/frames.js';
import { ChannelCursors, type CursorOutput } from './channel-cursors.js';

function pub(offset: number, epoch = 'e1', data = `m${offset}`): Publication {
  return { channel: 'c', data, id: `${offset}-${epoch}`, position: { offset, epoch }, ts: 0 };
}

function at(offset: number, epoch = 'e1'): StreamPosition {
  return { offset, epoch };
}

/** An output that writes down what it is told: `live m3`, `history m2`, `reload expired 4-e1`, `position 5-e1`, `lost gap`. */
class Recorder implements CursorOutput {
  readonly said: string[] = [];
  excluded = new Set<string>();
  recoverable = true;
  message(label: string, publication: Publication, frame: Buffer | undefined): boolean {
    if (this.excluded.has(publication.data)) return false;
    this.said.push(`${label} ${frame ? 'live' : 'history'} ${publication.data}`);
    return true;
  }
  reload(label: string, reason: ReloadReason, position: StreamPosition | undefined): void {
    this.said.push(`${label} reload ${reason} ${position ? formatMessageId(position) : ''}`);
  }
  position(label: string, position: StreamPosition): void {
    this.said.push(`${label} position ${formatMessageId(position)}`);
  }
  get lost(): ((label: string, cause: 'gap' | 'epoch') => void) | undefined {
    return this.recoverable ? (label, cause) => this.said.push(`${label} lost ${cause}`) : undefined;
  }
}

function live(cursors: ChannelCursors, out: Recorder, p: Publication, label = 'c'): string {
  return cursors.receive(label, Buffer.from(p.data), p, out);
}

test('live messages that follow on are delivered; duplicates are dropped; an untracked label is left to the caller', () => {
  const cursors = new ChannelCursors();
  const out = new Recorder();
  assert.equal(live(cursors, out, pub(1)), 'untracked');
  cursors.track('c', at(1));
  assert.equal(live(cursors, out, pub(1)), 'taken');
  assert.equal(live(cursors, out, pub(2)), 'taken');
  assert.equal(live(cursors, out, pub(2)), 'taken');
  assert.deepEqual(out.said, ['c live m2']);
  assert.deepEqual(cursors.positionOf('c'), at(2));
});

test('a skipped offset holds the message and asks for a recovery; release replays the gap then the held', () => {
  const cursors = new ChannelCursors();
  const out = new Recorder();
  cursors.track('c', at(1));
  assert.equal(live(cursors, out, pub(4)), 'held');
  assert.deepEqual(out.said, ['c lost gap']);
  assert.equal(cursors.heldBytes, 2);
  assert.equal(live(cursors, out, pub(5)), 'held');
  assert.equal(cursors.heldBytes, 4);
  cursors.release('c', { publications: [pub(2), pub(3), pub(4)], position: at(4) }, false, out);
  assert.deepEqual(out.said, ['c lost gap', 'c history m2', 'c history m3', 'c history m4', 'c live m5']);
  assert.equal(cursors.heldBytes, 0);
  assert.deepEqual(cursors.positionOf('c'), at(5));
  assert.equal(cursors.isHolding('c'), false);
});

test('without a way to recover, a gap is delivered as it is', () => {
  const cursors = new ChannelCursors();
  const out = new Recorder();
  out.recoverable = false;
  cursors.track('c', at(1));
  assert.equal(live(cursors, out, pub(3)), 'taken');
  assert.deepEqual(out.said, ['c live m3']);
});

test('a new epoch from its first message after a position is a reload without recovery', () => {
  const cursors = new ChannelCursors();
  const out = new Recorder();
  cursors.track('c', at(7));
  live(cursors, out, pub(1, 'e2'));
  assert.deepEqual(out.said, ['c reload epoch 0-e2', 'c live m1']);
  assert.deepEqual(cursors.positionOf('c'), at(1, 'e2'));
});

test('after a read stamp, the first message of a new epoch is taken as nothing missed', () => {
  const cursors = new ChannelCursors();
  const out = new Recorder();
  cursors.track('c', at(0, 'S123abc'));
  live(cursors, out, pub(1, 'e2'));
  assert.deepEqual(out.said, ['c live m1']);
});

test('a new epoch that began before the live message is recovered from its start', () => {
  const cursors = new ChannelCursors();
  const out = new Recorder();
  cursors.track('c', at(7));
  assert.equal(live(cursors, out, pub(3, 'e2')), 'held');
  assert.deepEqual(out.said, ['c lost epoch']);
  cursors.release(
    'c',
    { publications: [pub(1, 'e2'), pub(2, 'e2'), pub(3, 'e2')], position: at(3, 'e2'), reload: 'epoch', reloadAt: at(0, 'e2') },
    false,
    out,
  );
  // m3 came from history; the held live m3 is not delivered again.
  assert.deepEqual(out.said, ['c lost epoch', 'c reload epoch 0-e2', 'c history m1', 'c history m2', 'c history m3']);
  assert.deepEqual(cursors.positionOf('c'), at(3, 'e2'));
});

test('an older overlapping read does not tell the client to reload twice', () => {
  const cursors = new ChannelCursors();
  const out = new Recorder();
  cursors.track('c', at(2, 'e2'));
  cursors.hold('c');
  cursors.release('c', { publications: [pub(1, 'e2'), pub(2, 'e2')], position: at(2, 'e2'), reload: 'epoch', reloadAt: at(0, 'e2') }, false, out);
  assert.deepEqual(out.said, []);
});

test('a resume with nothing missed announces a moved position, and nothing when it stayed', () => {
  const cursors = new ChannelCursors();
  const out = new Recorder();
  cursors.track('c');
  cursors.hold('c');
  cursors.release('c', { publications: [], position: at(9) }, false, out);
  assert.deepEqual(out.said, ['c position 9-e1']);
  cursors.hold('c');
  cursors.release('c', { publications: [], position: at(9) }, false, out);
  assert.deepEqual(out.said, ['c position 9-e1']);
});

test('a fresh client keeps every live message held since it joined, even those the read saw', () => {
  const cursors = new ChannelCursors();
  const out = new Recorder();
  cursors.track('c');
  cursors.hold('c');
  live(cursors, out, pub(5));
  live(cursors, out, pub(6));
  cursors.release('c', { publications: [], position: at(6) }, true, out);
  assert.deepEqual(out.said, ['c position 4-e1', 'c live m5', 'c live m6']);
});

test('held messages the history already replayed are not delivered twice', () => {
  const cursors = new ChannelCursors();
  const out = new Recorder();
  cursors.track('c', at(1));
  cursors.hold('c');
  live(cursors, out, pub(2));
  live(cursors, out, pub(3));
  cursors.release('c', { publications: [pub(2)], position: at(2) }, false, out);
  assert.deepEqual(out.said, ['c history m2', 'c live m3']);
});

test('a held message revealing another gap keeps the rest held for that recovery', () => {
  const cursors = new ChannelCursors();
  const out = new Recorder();
  cursors.track('c', at(1));
  cursors.hold('c');
  live(cursors, out, pub(5));
  live(cursors, out, pub(6));
  cursors.release('c', { publications: [pub(2)], position: at(2) }, false, out);
  assert.deepEqual(out.said, ['c history m2', 'c lost gap']);
  assert.equal(cursors.isHolding('c'), true);
  assert.equal(cursors.heldBytes, 4);
  cursors.release('c', { publications: [pub(3), pub(4), pub(5)], position: at(5) }, false, out);
  assert.deepEqual(out.said.slice(2), ['c history m3', 'c history m4', 'c history m5', 'c live m6']);
});

test('an excluded message moves the position and is no gap', () => {
  const cursors = new ChannelCursors();
  const out = new Recorder();
  out.excluded.add('m2');
  cursors.track('c', at(1));
  live(cursors, out, pub(2));
  live(cursors, out, pub(3));
  assert.deepEqual(out.said, ['c live m3']);
  // Replayed but excluded: not "told", so the moved position is announced instead.
  cursors.hold('c');
  out.excluded.add('m4');
  cursors.release('c', { publications: [pub(4)], position: at(4) }, false, out);
  assert.deepEqual(out.said, ['c live m3', 'c position 4-e1']);
});

test('a reload outcome tells the client, then its position moves on', () => {
  const cursors = new ChannelCursors();
  const out = new Recorder();
  cursors.track('c', at(1));
  cursors.hold('c');
  cursors.release('c', { publications: [], position: at(40), reload: 'expired' }, false, out);
  assert.deepEqual(out.said, ['c reload expired 40-e1']);
  assert.equal(cursors.hold('c'), true);
  assert.equal(cursors.hold('c'), false, 'held already');
});

test('untrack forgets the label and the bytes held for it; release of an unheld label does nothing', () => {
  const cursors = new ChannelCursors();
  const out = new Recorder();
  cursors.track('a', at(1));
  cursors.track('b', at(1));
  cursors.hold('a');
  live(cursors, out, pub(2), 'a');
  assert.equal(cursors.heldBytes, 2);
  cursors.untrack('a');
  assert.equal(cursors.heldBytes, 0);
  assert.equal(cursors.positionOf('a'), undefined);
  cursors.release('b', { publications: [pub(2)], position: at(2) }, false, out);
  assert.deepEqual(out.said, []);
  assert.deepEqual(cursors.positionOf('b'), at(1));
});
