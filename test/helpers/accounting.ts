/**
 * The accounting of a client that receives messages `m<seq>` (seq growing over a run): per acknowledged message,
 * delivered exactly once and in order, or covered by an explicit reload (`missed` in the SDK, `reload` on the wire)
 * received exactly where the message belongs. Shared by the SDK outage test (test/client/fleet.ts) and the chaos
 * suite (chaos/).
 */

/**
 * Judge one client. Its seqs should be strictly increasing. An acknowledged seq it lacks sits between two delivered
 * ones; it is covered when a `missed` event came exactly there (after the earlier, before the later), else lost.
 */
export function accountClient(
  seqs: readonly number[],
  missedAt: readonly number[],
  acked: readonly number[],
): { lost: number; covered: number; duplicates: number; outOfOrder: number } {
  const got = new Set<number>();
  let duplicates = 0;
  let outOfOrder = 0;
  seqs.forEach((s, i) => {
    if (got.has(s)) duplicates++;
    else if (i > 0 && s < (seqs[i - 1] ?? -1)) outOfOrder++;
    got.add(s);
  });
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
  return { lost, covered, duplicates, outOfOrder };
}
