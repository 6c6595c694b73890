/**
 * The accounting of a client that receives messages `m<seq>` (seq growing over a run): per acknowledged message,
 * delivered exactly once and in order, or covered by an explicit reload (`missed` in the SDK, `reload` on the wire)
 * received exactly where the message belongs. Shared by the SDK outage test (test/client/fleet.ts) and the chaos
 * suite (chaos/).
 */

/**
 * Judge one client. Its acknowledged seqs should be strictly increasing. An acknowledged seq it lacks sits between
 * two delivered ones; it is covered when a `missed` event came exactly there (after the earlier, before the later),
 * else lost.
 *
 * Order is judged among acknowledged messages only. A publish the publisher saw fail (its node SIGKILLed while the
 * request was in flight: "unreachable") may still have been published, and later than the publishes that followed
 * it on another node: nothing orders it, since the publisher moved on without an answer. Counting it as out of order
 * was the node-kill run's "140 clients with one message out of order" (docs/reliability.md): every non-SDK client of
 * the channels that had a publish in flight at the kill, on both nodes (the SDK drops a message whose id is behind
 * the last it delivered, so it never shows one). Such arrivals are counted apart, as `unackedLate`.
 */
export function accountClient(
  seqs: readonly number[],
  missedAt: readonly number[],
  acked: readonly number[],
): { lost: number; covered: number; duplicates: number; outOfOrder: number; unackedLate: number } {
  const ackedSet = new Set(acked);
  const got = new Set<number>();
  let duplicates = 0;
  let outOfOrder = 0;
  let unackedLate = 0;
  let lastAcked = -1;
  let last = -1;
  for (const s of seqs) {
    if (got.has(s)) duplicates++;
    else if (ackedSet.has(s)) {
      if (s < lastAcked) outOfOrder++;
      lastAcked = Math.max(lastAcked, s);
    } else if (s < last) unackedLate++;
    got.add(s);
    last = Math.max(last, s);
  }
  const gaps = new Set(missedAt);
  let lost = 0;
  let covered = 0;
  let k = 0; // delivered seqs below the acknowledged one being judged
  // Every acknowledged message counts: the publisher starts only once every client is connected.
  for (const s of acked) {
    if (got.has(s)) continue;
    while (k < seqs.length && (seqs[k] ?? 0) < s) k++;
    if (gaps.has(k)) covered++;
    else lost++;
  }
  return { lost, covered, duplicates, outOfOrder, unackedLate };
}
