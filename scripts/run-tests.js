// Runs the compiled tests with node's built-in test runner. `npm test` compiles first (pretest), so the tests are
// type-checked like the sources.
//   node scripts/run-tests.js [--unit | --integration] [substring ...]
// --unit: the colocated unit tests (src/**/*.test.ts: pure code, no servers; seconds).
// --integration: test/**/*.test.ts (real servers, sockets, clients, redis-server processes).
// Neither: both. Substrings pick files whose path contains one of them.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function find(dir) {
  if (!existsSync(dir)) return [];
  let out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out = out.concat(find(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const args = process.argv.slice(2);
const unit = args.includes('--unit');
const integration = args.includes('--integration');
const filter = args.filter((a) => a !== '--unit' && a !== '--integration');
const roots = unit === integration ? ['dist/src', 'dist/test'] : unit ? ['dist/src'] : ['dist/test'];
const files = roots
  .flatMap((root) => find(root))
  .filter((f) => filter.length === 0 || filter.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
const result = spawnSync(
  process.execPath,
  ['--test', '--test-concurrency=2', '--test-timeout=120000', '--test-reporter=spec', ...files],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
