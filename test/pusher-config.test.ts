/**
 * Pusher apps in the configuration (issue 11 §1): the file and HERALD_PUSHER_APPS, the --dev default app, one line
 * naming the entry and field for a bad one (at the CLI: exit 2), and the activity timeout with the node's ticker.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkConfig, resolveConfig, ConfigError } from '../src/config.js';
import { cleanEnv, runHerald } from './helpers/cli.js';
import { startServer, type TestServer, fileCleanups } from './helpers/server.js';
import { openWs } from './helpers/ws.js';
import { ManualClock } from '../src/util/clock.js';

const cleanups = fileCleanups();

const SECRET = 'a-secret-of-more-than-thirty-two-characters-xyz';

test('--dev has the app app-id / app-key / app-secret; outside it no app unless configured', () => {
  const dev = resolveConfig({ overrides: { dev: true } });
  assert.deepEqual(dev.pusherApps.map((a) => [a.id, a.key, a.secret, a.clientEvents]), [['app-id', 'app-key', 'app-secret', true]]);
  const prod = resolveConfig({ env: { HERALD_SECRET: SECRET } });
  assert.deepEqual(prod.pusherApps, []);
});

test('HERALD_PUSHER_APPS: defaults filled in; a configured app replaces --dev\'s', () => {
  const c = resolveConfig({ env: { HERALD_SECRET: SECRET, HERALD_PUSHER_APPS: '[{"id":"7","key":"k7","secret":"s7-secret-0123456789"}]' } });
  assert.deepEqual(c.pusherApps, [{
    id: '7', key: 'k7', secret: 's7-secret-0123456789', allowedOrigins: [], clientEvents: false, channelPrefix: '', webhooks: [],
    maxConnections: 0, maxEventBytes: 10_240, maxClientEventsPerSecond: 10, maxPresenceMembers: 100,
  }]);
  const dev = resolveConfig({ overrides: { dev: true }, env: { HERALD_PUSHER_APPS: '[{"id":"7","key":"k7","secret":"s"}]' } });
  assert.deepEqual(dev.pusherApps.map((a) => a.id), ['7']);
});

test('a bad app entry is one problem naming the entry and its field', () => {
  const cases: [string, RegExp][] = [
    ['{}', /^invalid setting HERALD_PUSHER_APPS: must be a list/],
    ['[{"id":"1","key":"k"}]', /^invalid setting HERALD_PUSHER_APPS\[0\]\.secret: required/],
    ['[{"id":"1","key":"k k","secret":"s"}]', /^invalid setting HERALD_PUSHER_APPS\[0\]\.key: required: 1-64 letters/],
    ['[{"id":"1","key":"a","secret":"s"},{"id":"1","key":"b","secret":"s"}]', /^invalid setting HERALD_PUSHER_APPS\[1\]\.id: "1" is used by another app/],
    ['[{"id":"1","key":"a","secret":"s","clientEvent":true}]', /^invalid setting HERALD_PUSHER_APPS\[0\]\.clientEvent: unknown field \(did you mean clientEvents\?\)/],
    ['[{"id":"1","key":"a","secret":"s","webhooks":[{"url":"ftp://x"}]}]', /^invalid setting HERALD_PUSHER_APPS\[0\]\.webhooks\[0\]\.url: /],
    ['[{"id":"1","key":"a","secret":"s","webhooks":[{"url":"http://x","events":["member_joined"]}]}]', /webhooks\[0\]\.events: must list some of/],
    ['[{"id":"1","key":"a","secret":"s","maxEventBytes":1}]', /\[0\]\.maxEventBytes: must be an integer 64\.\./],
  ];
  for (const [json, re] of cases) {
    const r = checkConfig({ env: { HERALD_SECRET: SECRET, HERALD_PUSHER_APPS: json } });
    assert.equal(r.config, undefined, json);
    assert.equal(r.problems.length, 1, json);
    assert.ok(r.problems[0] instanceof ConfigError);
    assert.match(r.problems[0]!.message, re, json);
  }
});

test('outside --dev an app secret must be at least 16 characters and not --dev\'s', () => {
  for (const secret of ['short', 'app-secret']) {
    const r = checkConfig({ env: { HERALD_SECRET: SECRET, HERALD_PUSHER_APPS: JSON.stringify([{ id: '1', key: 'k', secret }]) } });
    assert.equal(r.config, undefined, secret);
    assert.match(r.problems[0]!.message, /^invalid setting pusherApps\[0\]\.secret: too weak outside --dev/);
  }
  assert.ok(resolveConfig({ overrides: { dev: true }, env: { HERALD_PUSHER_APPS: '[{"id":"1","key":"k","secret":"short"}]' } }));
});

test('herald serve with a bad app entry exits 2 with one line', async () => {
  const { code, stderr } = await runHerald(['serve', '--port', '0'], { ...cleanEnv(), HERALD_SECRET: SECRET, HERALD_PUSHER_APPS: '[{"id":"1"}]' });
  assert.equal(code, 2);
  const lines = stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, stderr);
  assert.match(lines[0]!, /^herald: invalid setting HERALD_PUSHER_APPS\[0\]\.key: required/);
});

test('activity timeout on the node\'s ticker: a quiet client is pinged, one that answers stays, one that does not is closed 4201', async () => {
  // The ticker runs on a ManualClock: each second passes when the test moves time, not after real seconds.
  const clock = new ManualClock(Date.now());
  const n: TestServer = await startServer({ pusherActivityTimeoutSeconds: 2, heartbeatSeconds: 1 }, { clock });
  cleanups.push(() => n.close());
  const quiet = await openWs(`${n.url}/app/app-key?protocol=7`);
  const polite = await openWs(`${n.url}/app/app-key?protocol=7`);
  cleanups.push(() => quiet.close(), () => polite.close());
  const event = (f: unknown): string => (f as { event: string }).event;
  const pinged = (c: typeof quiet): number => c.frames.filter((x) => event(x) === 'pusher:ping').length;
  const established = JSON.parse((polite.frames[0] as unknown as { data: string }).data) as { activity_timeout: number };
  assert.equal(established.activity_timeout, 2);
  polite.ws.on('message', (m) => {
    if (String(m).includes('"pusher:ping"')) polite.ws.send('{"event":"pusher:pong","data":{}}');
  });
  const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 100));
  // 1 s quiet: under activity_timeout, no ping yet.
  clock.advance(1000);
  await settle();
  assert.equal(pinged(quiet) + pinged(polite), 0, 'no ping before activity_timeout');
  // 2 s quiet: both are pinged; the polite one answers (its pong is in before the next second).
  clock.advance(1000);
  await quiet.waitFrames(() => pinged(quiet) === 1, 3000, 'the server ping');
  await polite.waitFrames(() => pinged(polite) === 1, 3000, 'the server ping to the polite client');
  await settle();
  // 1 s after the ping: not yet given up on.
  clock.advance(1000);
  await settle();
  assert.equal(quiet.ws.readyState, quiet.ws.OPEN, 'not closed before activity_timeout after the ping');
  // 2 s after the unanswered ping: closed 4201; the one that answered stays.
  clock.advance(1000);
  const closed = await quiet.closed;
  assert.equal(closed.code, 4201);
  await settle();
  assert.equal(polite.ws.readyState, polite.ws.OPEN, 'and stays open');
});
