/**
 * deploy/herald.service: `systemd-analyze verify` accepts it, `systemd-analyze security` rates its hardening, and it
 * keeps the promises docs/deployment.md makes: SIGTERM to stop, a stop timeout longer than Herald's drain, many file
 * descriptors, a dedicated unprivileged user.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { DEFAULTS } from '../../src/config.js';
import { HERALD_BIN, ROOT } from '../helpers/cli.js';

const run = promisify(execFile);
const ANALYZE = '/usr/bin/systemd-analyze';
const UNIT = readFileSync(join(ROOT, 'deploy', 'herald.service'), 'utf8');
const NO_ANALYZE = existsSync(ANALYZE) ? undefined : `no ${ANALYZE} (apt-get install systemd; .ci/run does)`;
if (NO_ANALYZE && process.env['CI']) throw new Error(NO_ANALYZE);

/** The values of `Key=` lines (a key may repeat), comments and section headers aside. */
function values(key: string): string[] {
  return UNIT.split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1).trim());
}
const one = (key: string): string => {
  const v = values(key);
  assert.equal(v.length, 1, `${key}= should appear once, found ${v.length}`);
  return v[0]!;
};

/**
 * The unit with ExecStart pointing at this checkout's bin/herald.js, as verify checks that the command exists
 * (the real unit names /usr/local/bin/herald, where `npm install --global` puts it).
 */
async function withCheckoutBinary<T>(fn: (path: string) => Promise<T>): Promise<T> {
  assert.match(one('ExecStart'), /^\/usr\/local\/bin\/herald serve$/);
  const dir = await mkdtemp(join(tmpdir(), 'herald-unit-'));
  try {
    const path = join(dir, 'herald.service');
    await writeFile(path, UNIT.replace('ExecStart=/usr/local/bin/herald', `ExecStart=${HERALD_BIN}`));
    return await fn(path);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('systemd-analyze verify accepts the unit, without a warning', { skip: NO_ANALYZE }, async () => {
  await withCheckoutBinary(async (path) => {
    const { stdout, stderr } = await run(ANALYZE, ['verify', path]);
    assert.equal(stdout + stderr, '', 'systemd-analyze verify printed findings');
  });
});

test('systemd-analyze security rates the hardening OK (exposure 1.5 or lower of 10)', { skip: NO_ANALYZE }, async () => {
  await withCheckoutBinary(async (path) => {
    // --threshold is in tenths: the command fails when the exposure is above 1.5.
    const { stdout } = await run(ANALYZE, ['security', '--offline=yes', '--threshold=15', '--no-pager', path]);
    assert.match(stdout, /Overall exposure level for herald\.service: (0|1)\.\d OK/);
  });
});

test('the unit stops with SIGTERM and waits longer than a drain, with many descriptors, as a dedicated user', () => {
  assert.equal(one('KillSignal'), 'SIGTERM');
  const stopSeconds = Number(/^(\d+)s?$/.exec(one('TimeoutStopSec'))?.[1]);
  // The drain (drainTimeoutMs), then the broker's goodbye (redisTimeoutMs), with room to spare.
  const drainSeconds = (DEFAULTS.drainTimeoutMs + DEFAULTS.redisTimeoutMs) / 1000;
  assert.ok(stopSeconds >= drainSeconds + 10, `TimeoutStopSec ${stopSeconds}s leaves too little above a ${drainSeconds}s drain`);
  assert.ok(Number(one('LimitNOFILE')) >= 65_536, 'LimitNOFILE');
  assert.equal(one('User'), 'herald');
  assert.equal(one('NoNewPrivileges'), 'yes');
  assert.equal(one('CapabilityBoundingSet'), '', 'no capabilities');
  assert.equal(one('ProtectSystem'), 'strict');
  assert.equal(one('EnvironmentFile'), '/etc/herald/herald.env');
});

test('deploy/herald.env names only settings Herald reads', async () => {
  // Every VARIABLE in the example environment file (commented or not) is a documented variable.
  const doc = readFileSync(join(ROOT, 'docs', 'configuration.md'), 'utf8');
  const names = [...readFileSync(join(ROOT, 'deploy', 'herald.env'), 'utf8').matchAll(/^#? ?([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]!);
  assert.ok(names.includes('HERALD_SECRET'));
  assert.deepEqual(names.filter((n) => !doc.includes(`\`${n}\``)), []);
});
