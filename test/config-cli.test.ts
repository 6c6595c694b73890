/**
 * `herald config init | check | print | schema` and the start-up warnings, through the real binary: a starter file
 * round trip (init → check → serve --config → publish with its key), bad files reported line by line, masked
 * secrets, the JSON Schema, and warnings for unknown HERALD_* variables and stray arguments.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { SETTING_NAMES } from '../src/config.js';
import { parseJsonc } from '../src/util/jsonc.js';
import { cleanEnv, killAll, runHerald, startHerald } from './helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'herald-config-cli-'));
after(async () => {
  await killAll();
  rmSync(dir, { recursive: true, force: true });
});

const noStack = (text: string): void => assert.doesNotMatch(text, /\n\s+at /, 'no stack trace');

test('config init → config check → serve --config: the starter file runs a node its API key publishes to', async () => {
  const file = join(dir, 'herald.json');
  const init = await runHerald(['config', 'init', file]);
  assert.equal(init.code, 0, init.stderr);
  assert.equal(statSync(file).mode & 0o777, 0o600, 'readable by its owner only: it holds the secret');
  const text = readFileSync(file, 'utf8');
  assert.match(text, /^\/\/ /m, 'commented');
  const starter = parseJsonc(text) as { secret: string; apiKeys: string[] };
  assert.ok(starter.secret.length >= 32, 'a fresh secret');
  assert.equal(starter.apiKeys.length, 1);

  const [check, again, other] = await Promise.all([
    runHerald(['config', 'check', file]),
    runHerald(['config', 'init', file]),
    runHerald(['config', 'init', '-']),
  ]);
  assert.equal(check.code, 0, check.stderr);
  assert.equal(check.stdout, `${file}: ok\n`);
  assert.equal(again.code, 1, 'never overwrites without --force');
  assert.match(again.stderr, /exists: not overwritten \(--force/);
  assert.equal(readFileSync(file, 'utf8'), text, 'the file is unchanged');
  const secretOf = (t: string): string => (parseJsonc(t) as { secret: string }).secret;
  assert.notEqual(secretOf(other.stdout), starter.secret, 'every starter file gets its own secret');

  const node = await startHerald(['--config', file, '--port', '0', '--host', '127.0.0.1']);
  try {
    const publish = (key: string): Promise<Response> =>
      fetch(`${node.url}/api/publish`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ channel: 'abc', data: 'x' }),
      });
    assert.equal((await publish(starter.apiKeys[0] ?? '')).status, 200, "the file's API key publishes");
    assert.equal((await publish('not-the-key')).status, 401);
  } finally {
    node.proc.kill('SIGTERM');
    assert.equal((await node.exited).code, 0);
  }

  const forced = await runHerald(['config', 'init', file, '--force']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.notEqual(secretOf(readFileSync(file, 'utf8')), starter.secret, '--force writes a new file');
});

test('config check: one line per problem, exit 1; a file that is not JSON says where', async () => {
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, '{\n  // comments are fine\n  "prot": 80,\n  "port": 99999,\n  "logLevel": "loud",\n  "broker": "redis://a:1//x" \n}\n');
  const broken = join(dir, 'broken.json');
  writeFileSync(broken, '{\n  "port": 80,\n}\n');
  const [r, b, missing] = await Promise.all([
    runHerald(['config', 'check', bad], cleanEnv({ HERALD_SECRET: 'k3J9-xQ2m_Lp8vR4tW7yZ1aB5cD0eF6gH' })),
    runHerald(['config', 'check', broken]),
    runHerald(['config', 'check', join(dir, 'none.json')]),
  ]);
  assert.equal(r.code, 1);
  assert.deepEqual(r.stderr.trimEnd().split('\n'), [
    `${bad}: invalid setting prot: unknown setting in ${bad} (did you mean port?)`,
    `${bad}: invalid setting port (config file): must be at most 65535`,
    `${bad}: invalid setting logLevel (config file): must be one of debug, info, warn, error, silent`,
  ]);
  assert.equal(b.code, 1);
  assert.match(b.stderr, /broken\.json is not valid JSON \(line 3, column 1/);
  assert.equal(b.stderr.trimEnd().split('\n').length, 1);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /cannot read .*none\.json: ENOENT/);
  for (const x of [r, b, missing]) noStack(x.stderr);
  // What a node would refuse outside the file is a problem too: no secret anywhere.
  const nosecret = join(dir, 'nosecret.json');
  writeFileSync(nosecret, '{"port": 9000}');
  const s = await runHerald(['config', 'check', nosecret]);
  assert.equal(s.code, 1);
  assert.match(s.stderr, /HERALD_SECRET: a secret is required/);
});

test('config print: file, environment and flags merged, secrets and the broker password masked', async () => {
  const secret = 'S3cr3t-value-that-must-not-print-0123456789';
  const file = join(dir, 'print.json');
  writeFileSync(file, JSON.stringify({ port: 1111, heartbeatSeconds: 7, secret, scopedApiKeys: [{ key: 'scoped-key-0123456789', namespaces: ['chat'] }] }));
  const r = await runHerald(
    ['config', 'print', '--config', file, '--heartbeat-seconds', '9', '--broker', 'redis://user:hunter2-password@redis.internal:6379/0'],
    cleanEnv({ HERALD_PORT: '2222', HERALD_API_KEYS: 'api-key-one-0123456789' }),
  );
  assert.equal(r.code, 0, r.stderr);
  const printed = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.deepEqual(Object.keys(printed), SETTING_NAMES, 'every setting, in the table order');
  assert.equal(printed['port'], 2222, 'environment over file');
  assert.equal(printed['heartbeatSeconds'], 9, 'flag over file');
  assert.equal(printed['secret'], '***');
  assert.deepEqual(printed['apiKeys'], ['***']);
  assert.deepEqual(printed['scopedApiKeys'], [{ key: '***', namespaces: ['chat'] }]);
  assert.equal(printed['broker'], 'redis://user:***@redis.internal:6379/0');
  assert.equal(printed['previousSecret'], '', 'an unset secret shows as unset');
  for (const s of [secret, 'hunter2', 'api-key-one', 'scoped-key']) assert.ok(!r.stdout.includes(s), `${s} not printed`);
});

test('config schema: a JSON Schema with a property per setting that the starter file satisfies in type', async () => {
  const [r, init] = await Promise.all([runHerald(['config', 'schema']), runHerald(['config', 'init', '-'])]);
  assert.equal(r.code, 0, r.stderr);
  const schema = JSON.parse(r.stdout) as { additionalProperties: boolean; properties: Record<string, { type?: string; default?: unknown }> };
  assert.equal(schema.additionalProperties, false, 'unknown keys are errors, as in the loader');
  assert.deepEqual(Object.keys(schema.properties), ['$schema', ...SETTING_NAMES]);
  const typeOf = (v: unknown): string => (Array.isArray(v) ? 'array' : Number.isInteger(v) ? 'integer' : typeof v);
  for (const [key, value] of Object.entries(parseJsonc(init.stdout) as Record<string, unknown>)) {
    assert.equal(typeOf(value), schema.properties[key]?.type, key);
  }
  assert.equal(schema.properties['port']?.default, 8080);
});

test('warnings: an unknown HERALD_* variable (with the name it resembles) and a stray argument; the node still starts', async () => {
  const node = await startHerald(['--dev', '--port', '0', 'stray'], cleanEnv({ HERALD_PROT: '9000', HERALD_NOTHING_LIKE_IT: '1' }));
  node.proc.kill('SIGTERM');
  const { stderr } = await node.exited;
  const warnings = stderr.split('\n').filter((l) => l.includes('"level":"warn"'));
  assert.ok(warnings.some((l) => l.includes('unknown environment variable HERALD_PROT ignored (did you mean HERALD_PORT?)')), stderr);
  assert.ok(warnings.some((l) => l.includes('unknown environment variable HERALD_NOTHING_LIKE_IT ignored"')), stderr);
  assert.ok(warnings.some((l) => l.includes('stray argument \\"stray\\" ignored')), stderr);
  // Other commands say it in words.
  const print = await runHerald(['config', 'print', '--dev'], cleanEnv({ HERALD_SECRTE: 'x' }));
  assert.equal(print.code, 0, print.stderr);
  assert.equal(print.stderr, 'herald: warning: unknown environment variable HERALD_SECRTE ignored (did you mean HERALD_SECRET?)\n');
});
