/**
 * Issue 12 §2: the same generated requests go to Herald's readers (the front reader, the publish fast path) and to
 * node:http alone (a node with `nodeHttpOnly`), over real sockets. The rule: where node:http rejects, Herald
 * rejects; where it accepts, Herald answers the same way (status, error code, content type, framing) or hands the
 * request to node:http. Seeded and reproducible: the seed is printed on failure (HERALD_HTTP_SEED picks one);
 * a longer run is `npm run fuzz:http -- --cases N --seed S`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bothOutcomes, describe, startOraclePair } from './helpers/http-oracle.js';
import { differentialCases, report, runDifferential } from './helpers/differential.js';

const seed = Number(process.env['HERALD_HTTP_SEED'] ?? Math.floor(Math.random() * 2 ** 31));

test(`thousands of generated requests: Herald and node:http agree (seed ${seed})`, async () => {
  const cases = differentialCases(seed, 2500);
  const result = await runDifferential(cases, { seed, concurrency: 16 });
  assert.equal(result.disagreements.length, 0, report(result));
  assert.ok(result.cases >= 2500, `${result.cases} cases`);
});

test('the one deliberate difference: raw UTF-8 in a /sub target is served as its percent-encoded form', async () => {
  const pair = await startOraclePair();
  try {
    const raw = Buffer.concat([Buffer.from('GET /sub?channel=caf'), Buffer.from('é'), Buffer.from(' HTTP/1.1\r\nHost: localhost\r\n\r\n')]);
    const { herald, node } = await bothOutcomes(pair, [raw], 1);
    assert.equal(describe(node), '400:bad_request');
    assert.equal(describe(herald), '200 application/x-ndjson chunked');
  } finally {
    await pair.close();
  }
});
