/**
 * The delivery accounting of the SDK outage test and the chaos suite (test/helpers/accounting.ts): order is judged
 * among acknowledged messages; an unacknowledged publish that lands late (its node killed with the request in
 * flight) is counted apart, not as out of order (docs/reliability.md, node-kill).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { accountClient } from './helpers/accounting.js';

test('an unacknowledged message arriving after later acknowledged ones is late, not out of order', () => {
  // 12 was sent to the killed node (no answer): it reached Redis after 13 and 14, sent to the survivor.
  const r = accountClient([10, 11, 13, 14, 12, 15], [], [10, 11, 13, 14, 15]);
  assert.deepEqual(r, { lost: 0, covered: 0, duplicates: 0, outOfOrder: 0, unackedLate: 1 });
});

test('acknowledged messages out of order, duplicates, losses and covered gaps still count', () => {
  assert.equal(accountClient([1, 3, 2, 4], [], [1, 2, 3, 4]).outOfOrder, 1);
  assert.equal(accountClient([1, 2, 2, 3], [], [1, 2, 3]).duplicates, 1);
  assert.deepEqual(accountClient([1, 4], [1], [1, 2, 3, 4]), { lost: 0, covered: 2, duplicates: 0, outOfOrder: 0, unackedLate: 0 });
  assert.deepEqual(accountClient([1, 4], [], [1, 2, 3, 4]), { lost: 2, covered: 0, duplicates: 0, outOfOrder: 0, unackedLate: 0 });
  // An unacknowledged message in its place is neither late nor out of order.
  assert.deepEqual(accountClient([1, 2, 3], [], [1, 3]), { lost: 0, covered: 0, duplicates: 0, outOfOrder: 0, unackedLate: 0 });
});
