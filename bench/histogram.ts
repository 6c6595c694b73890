/**
 * Latency histogram in microseconds. Log-linear buckets (64 per power of two, ~1.6 % precision; exact below 128 µs):
 * recording is a few integer operations, and histograms from several processes merge by adding counts, so each
 * worker keeps its own and sends only the non-empty buckets to the parent.
 */
const SUB_BITS = 6;
const SUB = 1 << SUB_BITS;
const LINEAR = SUB * 2;
const MAX_US = 2 ** 31 - 1;
/** Bucket count: values up to 2^31 µs (~35 min). */
export const BUCKETS = (31 - SUB_BITS + 1) * SUB;

export function bucketOf(us: number): number {
  if (us < LINEAR) return us <= 0 ? 0 : us | 0;
  const v = us >= MAX_US ? MAX_US : us | 0;
  const e = 31 - Math.clz32(v);
  const shift = e - SUB_BITS;
  return (shift + 1) * SUB + ((v >>> shift) - SUB);
}

/** Smallest value that falls in bucket `i`. */
export function bucketLow(i: number): number {
  if (i < LINEAR) return i;
  const shift = Math.floor(i / SUB) - 1;
  return ((i % SUB) + SUB) * 2 ** shift;
}

export class Histogram {
  readonly counts = new Float64Array(BUCKETS);
  count = 0;
  max = 0;
  sum = 0;

  record(us: number): void {
    this.counts[bucketOf(us)]! += 1;
    this.count++;
    this.sum += us;
    if (us > this.max) this.max = us;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.max = 0;
    this.sum = 0;
  }

  /** Non-empty buckets as [index, count, index, count, ...] plus the exact max and sum. */
  toSparse(): SparseHistogram {
    const buckets: number[] = [];
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i]! > 0) buckets.push(i, this.counts[i]!);
    return { buckets, count: this.count, max: this.max, sum: this.sum };
  }

  add(s: SparseHistogram): void {
    for (let k = 0; k + 1 < s.buckets.length; k += 2) this.counts[s.buckets[k]!]! += s.buckets[k + 1]!;
    this.count += s.count;
    this.sum += s.sum;
    if (s.max > this.max) this.max = s.max;
  }

  /** How many values were above `us` (to bucket precision: a bucket counts when its lowest value is above). */
  countAbove(us: number): number {
    let n = 0;
    for (let i = bucketOf(us) + 1; i < BUCKETS; i++) n += this.counts[i]!;
    return n;
  }

  /** The value at quantile q (0..1): the upper edge of its bucket, never above the exact max. */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(this.max, i + 1 < BUCKETS ? bucketLow(i + 1) - 1 : MAX_US);
    }
    return this.max;
  }
}

export interface SparseHistogram {
  buckets: number[];
  count: number;
  max: number;
  sum: number;
}
