/**
 * Settings: flags > HERALD_* environment > --config JSON file > defaults; REDIS_URL as the broker when HERALD_BROKER
 * is unset; every bad value is one ConfigError naming the setting. The CLI turns it into one line and exit code 2.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { checkConfig, ConfigError, DEFAULTS, envName, flagName, OTHER_VARIABLES, resolveConfig, SETTING_NAMES, unknownVariables } from '../src/config.js';
import { closest } from '../src/util/closest.js';
import { JsoncError, parseJsonc, stripComments } from '../src/util/jsonc.js';
import { cleanEnv, killAll, runHerald } from './helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'herald-config-'));
after(async () => {
  await killAll();
  rmSync(dir, { recursive: true, force: true });
});

let files = 0;
function configFile(content: unknown): string {
  const path = join(dir, `config-${files++}.json`);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

const STRONG = 'k3J9-xQ2m_Lp8vR4tW7yZ1aB5cD0eF6gH';

/** The ConfigError `fn` throws; fails when it throws nothing or something else. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `not a ConfigError: ${String(err)}`);
    return err;
  }
  assert.fail('no ConfigError thrown');
}

test('defaults', () => {
  const c = resolveConfig({ env: { HERALD_SECRET: STRONG } });
  assert.equal(c.port, 8080);
  assert.equal(c.host, '0.0.0.0');
  assert.equal(c.broker, 'memory');
  assert.equal(c.dev, false);
  assert.equal(c.maxQueueBytes, 1024 * 1024);
  assert.equal(c.heartbeatSeconds, DEFAULTS.heartbeatSeconds);
  assert.deepEqual(c.apiKeys, []);
  assert.ok(Object.isFrozen(c));
});

test('names: maxQueueBytes is --max-queue-bytes and HERALD_MAX_QUEUE_BYTES', () => {
  assert.equal(flagName('maxQueueBytes'), '--max-queue-bytes');
  assert.equal(envName('maxQueueBytes'), 'HERALD_MAX_QUEUE_BYTES');
});

test('precedence: flags over environment over config file over defaults', () => {
  const file = configFile({ port: 1111, heartbeatSeconds: 7, maxQueueBytes: 5000, logLevel: 'warn' });
  const c = resolveConfig({
    configFile: file,
    env: { HERALD_SECRET: STRONG, HERALD_PORT: '2222', HERALD_HEARTBEAT_SECONDS: '8' },
    flags: { port: '3333' },
  });
  assert.equal(c.port, 3333, 'flag beats env and file');
  assert.equal(c.heartbeatSeconds, 8, 'env beats file');
  assert.equal(c.maxQueueBytes, 5000, 'file beats default');
  assert.equal(c.logLevel, 'warn');
  assert.equal(c.maxBodyBytes, DEFAULTS.maxBodyBytes, 'default where nothing is said');
});

test('HERALD_CONFIG names the file; --config wins over it', () => {
  const a = configFile({ port: 1001, dev: true });
  const b = configFile({ port: 1002, dev: true });
  assert.equal(resolveConfig({ env: { HERALD_CONFIG: a } }).port, 1001);
  assert.equal(resolveConfig({ env: { HERALD_CONFIG: a }, configFile: b }).port, 1002);
});

test('REDIS_URL is the broker when HERALD_BROKER is unset', () => {
  const env = { HERALD_SECRET: STRONG, REDIS_URL: 'redis://10.0.0.1:6379' };
  assert.equal(resolveConfig({ env }).broker, 'redis://10.0.0.1:6379');
  assert.equal(resolveConfig({ env: { ...env, HERALD_BROKER: 'memory' } }).broker, 'memory');
  assert.equal(resolveConfig({ env, flags: { broker: 'redis://10.0.0.2:6379' } }).broker, 'redis://10.0.0.2:6379');
  // The config file is below the environment, REDIS_URL included.
  assert.equal(resolveConfig({ env, configFile: configFile({ broker: 'memory' }) }).broker, 'redis://10.0.0.1:6379');
});

test('an empty environment variable counts as unset', () => {
  assert.equal(resolveConfig({ env: { HERALD_SECRET: STRONG, HERALD_PORT: '' } }).port, 8080);
});

test('value forms: booleans, lists from commas or repeats, integers', () => {
  const c = resolveConfig({
    env: { HERALD_DEV: 'yes', HERALD_API_KEYS: 'k1, k2,,k3', HERALD_MAX_CONNECTIONS: ' 12 ' },
    flags: { allowedOrigins: ['https://a.example', 'https://b.example,https://c.example'] },
  });
  assert.equal(c.dev, true);
  assert.deepEqual(c.apiKeys, ['k1', 'k2', 'k3']);
  assert.equal(c.maxConnections, 12);
  assert.deepEqual(c.allowedOrigins, ['https://a.example', 'https://b.example', 'https://c.example']);
  assert.equal(resolveConfig({ env: { HERALD_DEV: 'off', HERALD_SECRET: STRONG } }).dev, false);
});

test('--dev binds loopback unless a host is given', () => {
  assert.equal(resolveConfig({ flags: { dev: true } }).host, '127.0.0.1');
  assert.equal(resolveConfig({ flags: { dev: true, host: '0.0.0.0' } }).host, '0.0.0.0');
  assert.equal(resolveConfig({ flags: { dev: true }, env: { HERALD_HOST: '::1' } }).host, '::1');
});

test('a bad value names the setting as the user wrote it', () => {
  const dev = { HERALD_DEV: 'true' };
  const cases: [() => unknown, string, RegExp][] = [
    [() => resolveConfig({ env: { ...dev, HERALD_PORT: 'abc' } }), 'HERALD_PORT', /not an integer/],
    [() => resolveConfig({ env: dev, flags: { port: '70000' } }), '--port', /at most 65535/],
    [() => resolveConfig({ env: dev, flags: { maxQueueBytes: '12' } }), '--max-queue-bytes', /at least/],
    [() => resolveConfig({ env: { ...dev, HERALD_HEARTBEAT_SECONDS: '1.5' } }), 'HERALD_HEARTBEAT_SECONDS', /integer/],
    [() => resolveConfig({ env: { ...dev, HERALD_DEV: 'maybe' } }), 'HERALD_DEV', /boolean/],
    [() => resolveConfig({ env: { ...dev, HERALD_LOG_LEVEL: 'loud' } }), 'HERALD_LOG_LEVEL', /one of/],
    [() => resolveConfig({ env: dev, flags: { broker: 'mysql://db' } }), '--broker', /memory, redis/],
    [() => resolveConfig({ env: dev, configFile: configFile({ port: '80' }) }), 'port', /integer/],
    [() => resolveConfig({ env: dev, configFile: configFile({ apiKeys: 'k' }) }), 'apiKeys', /list/],
    [() => resolveConfig({ env: dev, configFile: configFile({ prot: 80 }) }), 'prot', /unknown setting/],
    [() => resolveConfig({ env: dev, configFile: configFile('{"port": 80,') }), '--config', /not valid JSON/],
    [() => resolveConfig({ env: dev, configFile: configFile('[1]') }), '--config', /object/],
    [() => resolveConfig({ env: dev, configFile: join(dir, 'missing.json') }), '--config', /cannot read/],
    [() => resolveConfig({}), 'HERALD_SECRET', /required/],
    [() => resolveConfig({ env: { HERALD_SECRET: 'changeme' } }), 'HERALD_SECRET', /weak/],
    [() => resolveConfig({ env: { HERALD_SECRET: 'short-but-random-9f8e7d' } }), 'HERALD_SECRET', /weak/],
  ];
  for (const [fn, setting, reason] of cases) {
    const err = configError(fn);
    assert.equal(err.setting, setting, err.message);
    assert.match(err.message, reason);
    assert.ok(err.message.includes(setting), err.message);
    assert.ok(!err.message.includes('\n'), 'one line');
  }
});

test('the CLI: a bad setting exits with code 2 and one line naming it', async (t) => {
  // One case per source (flag, environment, file, unknown flag, missing secret): each is a node process, so the
  // rest of the validation is checked in-process above (and weak secrets in security.test.ts, row 20).
  const unknownKey = configFile({ port: 0, dev: true, maxQueueByte: 5 });
  const cases: [string[], Record<string, string>, RegExp][] = [
    [['serve', '--dev', '--port', 'abc'], {}, /--port/],
    [['serve', '--dev', '--port', '0'], { HERALD_MAX_QUEUE_BYTES: '12' }, /HERALD_MAX_QUEUE_BYTES/],
    [['serve', '--dev', '--config', unknownKey], {}, /maxQueueByte.*unknown setting/],
    [['serve', '--dev', '--prot', '1'], {}, /--prot/],
    [['serve', '--port', '0', '--host', '127.0.0.1'], {}, /HERALD_SECRET/],
    [['publish', 'abc'], {}, /usage: herald publish/],
  ];
  await Promise.all(
    cases.map(([args, env, line]) =>
      t.test(args.join(' ') + ' ' + JSON.stringify(env), async () => {
        const r = await runHerald(args, cleanEnv(env));
        assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`);
        const first = r.stderr.split('\n')[0] ?? '';
        assert.match(first, /^herald: /);
        assert.match(first, line);
        if (args[0] === 'serve') {
          assert.equal(r.stderr.trimEnd().split('\n').length, 1, `one line: ${r.stderr}`);
          assert.match(first, /^herald: invalid setting /);
        }
        assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      }),
    ),
  );
});

test('brokerWaitMs: 5000 by default, 0 to 60000 from flags or environment, anything else refused naming the setting', () => {
  assert.equal(resolveConfig({ env: { HERALD_SECRET: STRONG } }).brokerWaitMs, 5000);
  assert.equal(resolveConfig({ env: { HERALD_SECRET: STRONG }, flags: { brokerWaitMs: '0' } }).brokerWaitMs, 0);
  assert.equal(resolveConfig({ env: { HERALD_SECRET: STRONG, HERALD_BROKER_WAIT_MS: '60000' } }).brokerWaitMs, 60_000);
  for (const bad of ['-1', '60001', 'soon', '1.5']) {
    const err = configError(() => resolveConfig({ env: { HERALD_SECRET: STRONG }, flags: { brokerWaitMs: bad } }));
    assert.match(err.message, /brokerWaitMs|broker-wait-ms/, err.message);
  }
});

test('checkConfig reports every problem, in the order resolveConfig meets the first', () => {
  const file = configFile({ prot: 1, port: -1, logLevel: 'loud' });
  const r = checkConfig({ env: { HERALD_HEARTBEAT_SECONDS: 'x' }, configFile: file });
  assert.equal(r.config, undefined);
  assert.deepEqual(r.problems.map((p) => p.setting), ['prot', 'port (config file)', 'HERALD_HEARTBEAT_SECONDS', 'logLevel (config file)']);
  assert.equal(configError(() => resolveConfig({ env: { HERALD_HEARTBEAT_SECONDS: 'x' }, configFile: file })).setting, 'prot');
  const ok = checkConfig({ env: { HERALD_SECRET: STRONG } });
  assert.deepEqual(ok.problems, []);
  assert.equal(ok.config?.port, 8080);
});

test('the config file takes comments and a $schema key; slashes inside strings stay', () => {
  const file = configFile('// a comment\n{\n  "$schema": "./herald.schema.json", /* block\n comment */\n  "broker": "redis://h:1", // the broker\n  "dev": true\n}\n');
  const c = resolveConfig({ configFile: file });
  assert.equal(c.broker, 'redis://h:1');
  assert.equal(c.dev, true);
  assert.equal(stripComments('{"a": "x // y /* z */"} // c'), '{"a": "x // y /* z */"}     ');
  assert.throws(() => parseJsonc('{"a": 1 /* open'), JsoncError);
  assert.match(configError(() => resolveConfig({ configFile: configFile('{\n "port": 1,\n}') })).message, /line 3, column 1/);
});

test('unknownVariables: HERALD_* nobody reads, with the nearest known name', () => {
  const found = unknownVariables({ HERALD_PROT: '1', HERALD_PORT: '2', HERALD_CONFIG: 'f', HERALD_API_KEY: 'k', HERALD_ZZZZZZZZZ: '1', PATH: '/bin' });
  assert.deepEqual(found.map((u) => [u.variable, u.suggestion]), [['HERALD_PROT', 'HERALD_PORT'], ['HERALD_ZZZZZZZZZ', undefined]]);
  for (const known of [...SETTING_NAMES.map(envName), ...OTHER_VARIABLES]) assert.deepEqual(unknownVariables({ [known]: '1' }), []);
  assert.equal(closest('HERALD_MAX_CONECTIONS', SETTING_NAMES.map(envName)), 'HERALD_MAX_CONNECTIONS');
  assert.equal(closest('maxQueueByte', SETTING_NAMES), 'maxQueueBytes');
  assert.equal(closest('colour', SETTING_NAMES), undefined);
});
