/** A worker's node flags: the primary's, plus a small young generation unless the operator chose one. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { workerExecArgv } from './primary.js';

test('workerExecArgv: 2 MB semi-spaces added to the primary flags; an operator flag or NODE_OPTIONS wins', () => {
  assert.deepEqual(workerExecArgv(['--expose-gc'], undefined), ['--expose-gc', '--max-semi-space-size=2']);
  assert.deepEqual(workerExecArgv([], ''), ['--max-semi-space-size=2']);
  assert.deepEqual(workerExecArgv(['--max-semi-space-size=16'], undefined), ['--max-semi-space-size=16']);
  assert.deepEqual(workerExecArgv(['--cpu-prof'], '--enable-source-maps --max-semi-space-size=8'), ['--cpu-prof']);
});
