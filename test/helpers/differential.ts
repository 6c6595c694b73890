/**
 * Run generated requests against a Herald node and a node:http-only node (http-oracle.ts) and list where they
 * disagree. Used by test/http-differential.test.ts (CI size) and scripts/fuzz-http.js (`npm run fuzz:http`).
 */
import { bothOutcomes, describe, describeAnswer, exchange, startOraclePair, type OraclePair, type Outcome } from './http-oracle.js';
import { everySplit, generateCases, type HttpCase } from './http-cases.js';

export interface Disagreement {
  index: number;
  what: string;
  bytes: string;
  herald: string;
  node: string;
}

export interface DifferentialResult {
  seed: number;
  cases: number;
  disagreements: Disagreement[];
  ms: number;
}

/** Run `cases` against a pair (started here unless given), `concurrency` at a time. */
export async function runDifferential(
  cases: readonly HttpCase[],
  options: { seed: number; concurrency?: number; pair?: OraclePair; onProgress?: (done: number) => void },
): Promise<DifferentialResult> {
  const started = Date.now();
  const pair = options.pair ?? (await startOraclePair());
  const disagreements: Disagreement[] = [];
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const index = next++;
      const c = cases[index];
      if (!c) return;
      const { herald, node } = await bothOutcomes(pair, c.parts, c.requests, c.headFirst);
      const h = describe(herald);
      const n = describe(node);
      if (h !== n && !(c.first && (await pipelineAgrees(pair, Buffer.concat(c.parts), c.first, c.requests, c.headFirst, herald, node)))) {
        disagreements.push({ index, what: c.what, bytes: JSON.stringify(Buffer.concat(c.parts).toString('latin1').slice(0, 600)), herald: h, node: n });
      }
      if (++done % 500 === 0) options.onProgress?.(done);
    }
  };
  try {
    await Promise.all(Array.from({ length: options.concurrency ?? 16 }, worker));
  } finally {
    if (!options.pair) await pair.close();
  }
  return { seed: options.seed, cases: cases.length, disagreements: disagreements.sort((a, b) => a.index - b.index), ms: Date.now() - started };
}

/**
 * Pipelined requests: what node:http answers after the first depends on how the bytes reached its parser (it
 * parses ahead, so an error in the second request can cancel the first's answer, or not, by a few microseconds).
 * So the first answer must be node:http's to the pipeline or to the first request alone (or, after a request that
 * closes its connection or before one llhttp refuses, the 400 llhttp gives when it reads both at once), and Herald must never answer more requests than
 * were sent. Plain pipelines (every split of two publishes, a stream with a request
 * behind it) are compared answer by answer, as every other case.
 */
async function pipelineAgrees(pair: OraclePair, whole: Buffer, first: Buffer, requests: number, headFirst: boolean, herald: Outcome, node: Outcome): Promise<boolean> {
  if (herald.answers.length > requests) return false;
  const ours = describeAnswer(herald.answers[0]);
  if (ours === describeAnswer(node.answers[0])) return true;
  const alone = await exchange(pair.node.url, [first], 1, headFirst);
  if (ours === describeAnswer(alone.answers[0])) return true;
  // After a request that closes its connection, llhttp refuses what follows (400) when it reads it with that
  // request, and answers the request first when it reads it later: which one depends on the segments it was given.
  if (ours !== '400:bad_request') return false;
  if (closesConnection(first)) return true;
  // The same when the request behind is one llhttp refuses: read with the first, it cancels the first's answer.
  const rest = await exchange(pair.node.url, [whole.subarray(first.length)], 1);
  return describeAnswer(rest.answers[0]) === '400:bad_request';
}

function closesConnection(request: Buffer): boolean {
  const head = request.toString('latin1', 0, Math.max(0, request.indexOf('\r\n\r\n')));
  const connection = /\r\nconnection:([^\r\n]*)/i.exec(head)?.[1]?.toLowerCase() ?? '';
  // llhttp keeps a connection alive by default only from HTTP/1.1 (a minor version above 0: HTTP/2.0 closes too).
  return /^[^\r\n]* HTTP\/\d\.0\r\n/.test(head + '\r\n') ? !connection.includes('keep-alive') : connection.includes('close');
}

/** The generated cases for `seed`, and every two-segment split of the base requests. */
export function differentialCases(seed: number, count: number, splits = true): HttpCase[] {
  return [...generateCases(seed, count), ...(splits ? everySplit() : [])];
}

export function report(r: DifferentialResult): string {
  const lines = [`http differential: seed ${r.seed}, ${r.cases} cases, ${r.disagreements.length} disagreements, ${r.ms} ms`];
  for (const d of r.disagreements.slice(0, 20)) {
    lines.push(`  #${d.index} (${d.what}): Herald ${d.herald} / node:http ${d.node}\n    ${d.bytes}`);
  }
  if (r.disagreements.length > 20) lines.push(`  ... and ${r.disagreements.length - 20} more`);
  lines.push(`  reproduce: npm run fuzz:http -- --seed ${r.seed} --cases ${r.cases}`);
  return lines.join('\n');
}
