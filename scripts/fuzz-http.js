// A longer run of the HTTP differential test (test/http-differential.test.ts):
//   npm run fuzz:http -- [--cases N] [--seed S] [--concurrency C] [--no-splits]
// Prints the disagreements (none expected) with the bytes that caused them, and exits 1 if there are any.
import { parseArgs } from 'node:util';
import { differentialCases, report, runDifferential } from '../dist/test/helpers/differential.js';

const { values } = parseArgs({
  options: {
    cases: { type: 'string', default: '20000' },
    seed: { type: 'string' },
    concurrency: { type: 'string', default: '16' },
    'no-splits': { type: 'boolean', default: false },
  },
});
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
const count = Number(values.cases);
if (!Number.isInteger(count) || count < 1 || !Number.isInteger(seed)) {
  console.error('usage: npm run fuzz:http -- [--cases N] [--seed S] [--concurrency C] [--no-splits]');
  process.exit(2);
}
console.log(`http fuzz: seed ${seed}, ${count} generated cases${values['no-splits'] ? '' : ' + every split of the base requests'}`);
const result = await runDifferential(differentialCases(seed, count, !values['no-splits']), {
  seed,
  concurrency: Number(values.concurrency),
  onProgress: (done) => process.stdout.write(`  ${done} done\n`),
});
console.log(report(result));
process.exit(result.disagreements.length === 0 ? 0 : 1);
