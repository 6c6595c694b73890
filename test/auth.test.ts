/**
 * Authorization that works: sealed keys and tokens on /sub and /sse, token sources, expiry, the verification cache,
 * secret rotation, public keys and JWKS, namespaces, scoped API keys, and the CLI's `key` and `token`.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { exportJWK } from 'jose';
import { TokenVerifier, signToken } from '../src/auth/jwt.js';
import { sealChannel, openSealedKey } from '../src/auth/sealed-key.js';
import { SecretRing } from '../src/auth/secrets.js';
import { resolveConfig, ConfigError } from '../src/config.js';
import { answer } from './helpers/guard.js';
import { ManualClock } from '../src/util/clock.js';
import { eventually, openStream, publish, startServer, TEST_SECRET, type TestServer } from './helpers/server.js';

const OLD_SECRET = 'old-secret-zyxwvutsrqponmlkjihgfedcba-9876543210';
const SCOPED_KEY = 'chat-only-key-0123456789abcdef';

let node: TestServer;
/** Outside --dev, /metrics answers its bearer token only. */
const METRICS_TOKEN = 'metrics-token-for-tests-0123456789';
before(async () => {
  node = await startServer({
    dev: false,
    metricsToken: METRICS_TOKEN,
    previousSecret: OLD_SECRET,
    previousSecretUntil: new Date(Date.now() + 3_600_000).toISOString(),
    tokenCookie: 'herald_token',
    namespaces: {
      public: { anonymous: true, historySize: 10, historyTtlSeconds: 60 },
      chat: { clientPublish: true, maxSubscribers: 2 },
    },
    scopedApiKeys: [{ key: SCOPED_KEY, namespaces: ['chat'] }],
  });
});
after(() => node.close());

const parse = (line: string): unknown[] => JSON.parse(line) as unknown[];

describe('sealed channel keys', () => {
  test('a key subscribes its channel on /sub and /sse, and the stream names the channel by its key', async () => {
    const key = sealChannel('private.room', { secret: TEST_SECRET, ttlSeconds: 60 });
    assert.match(key, /^[A-Za-z0-9_-]+$/);
    assert.equal(key.includes('private'), false);
    const sub = await openStream(`${node.url}/sub?key=${key}`);
    const sse = await openStream(`${node.url}/sse?key=${key}`);
    assert.equal(sub.status, 200);
    assert.equal(sse.status, 200);
    await publish(node.url, { channel: 'private.room', data: 'hello' });
    assert.deepEqual(parse((await sub.waitLines(1))[0] ?? ''), ['message', key, 'hello']);
    const events = await sse.waitLines(4);
    const data = events.find((l) => l.startsWith('data: '));
    assert.deepEqual(parse(data?.slice(6) ?? ''), ['message', key, 'hello']);
    assert.equal(events.join('\n').includes('private.room'), false);
    sub.close();
    sse.close();
  });

  test('two keys of one channel differ, and neither shows the name or its exact length', () => {
    const a = sealChannel('x', { secret: TEST_SECRET });
    const b = sealChannel('x', { secret: TEST_SECRET });
    assert.notEqual(a, b);
    assert.equal(sealChannel('xxxxxxxxxx', { secret: TEST_SECRET }).length, a.length);
    const ring = new SecretRing(TEST_SECRET);
    assert.equal(openSealedKey(a, ring).channel, 'x');
    const long = 'é'.repeat(127);
    assert.equal(openSealedKey(sealChannel(long, { secret: TEST_SECRET }), ring).channel, long);
  });

  test('a key sealed with the previous secret is accepted until its end date', async () => {
    const key = sealChannel('rotated', { secret: OLD_SECRET });
    assert.equal((await answer(`${node.url}/sub?key=${key}`)).status, 200);
  });
});

describe('JWT grants', () => {
  test('a token from token=, Authorization: Bearer or the cookie; channel= picks among its channels', async () => {
    const token = await signToken({ secret: TEST_SECRET, channels: ['news', 'user.42.*'], subject: '42' });
    const viaQuery = await openStream(`${node.url}/sub?token=${token}`);
    const viaHeader = await openStream(`${node.url}/sub?channel=user.42.inbox`, { Authorization: `Bearer ${token}` });
    const viaCookie = await openStream(`${node.url}/sse?channel=news`, { Cookie: `a=b; herald_token=${token}` });
    for (const s of [viaQuery, viaHeader, viaCookie]) assert.equal(s.status, 200);
    await publish(node.url, { channel: 'user.42.inbox', data: 'private' });
    await publish(node.url, { channel: 'news', data: 'public' });
    assert.deepEqual(parse((await viaQuery.waitLines(1))[0] ?? ''), ['message', 'news', 'public']);
    assert.deepEqual(parse((await viaHeader.waitLines(1))[0] ?? ''), ['message', 'user.42.inbox', 'private']);
    assert.ok((await viaCookie.waitLines(4)).some((l) => l.includes('"public"')));
    for (const s of [viaQuery, viaHeader, viaCookie]) s.close();
  });

  test('a grant that expires ends the stream with an "expired" line (sealed keys too)', async (t) => {
    // The expiry is the node's ticker's: a node of its own on a ManualClock, so the grants expire when the test moves
    // time (they are valid in real time when verified). No heartbeat in the minute moved at once.
    const clock = new ManualClock(Date.now());
    const own = await startServer({ dev: false, heartbeatSeconds: 3600 }, { clock });
    t.after(() => own.close());
    const token = await signToken({ secret: TEST_SECRET, channels: ['short'], ttlSeconds: 60 });
    const key = sealChannel('short', { secret: TEST_SECRET, ttlSeconds: 60 });
    const a = await openStream(`${own.url}/sub?token=${token}`);
    const b = await openStream(`${own.url}/sse?key=${key}`);
    // One tick before the expiry (whole seconds: at most 1 s after now + 60 s): both still open, nothing written.
    clock.advance(58_000);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(a.lines, [], 'the /sub stream is not ended before its expiry');
    assert.equal(b.lines.some((l) => l.includes('disconnect')), false, 'nor the /sse one');
    clock.advance(3000);
    await Promise.all([a.ended, b.ended]);
    assert.deepEqual(parse(a.lines.filter((l) => l !== '').at(-1) ?? ''), ['disconnect', 'expired', 3003, true]);
    assert.ok(b.lines.includes('event: disconnect'));
    assert.ok(b.lines.some((l) => l.includes('"expired",3003')));
  });

  test('10,000 verifications of one token cost one signature check', async () => {
    const verifier = new TokenVerifier({ ring: new SecretRing(TEST_SECRET), algorithms: ['HS256'] });
    const token = await signToken({ secret: TEST_SECRET, channels: ['crowd'] });
    const grants = await Promise.all(Array.from({ length: 10_000 }, () => verifier.verify(token)));
    assert.equal(verifier.verifications, 1);
    assert.equal(grants[9999]?.channels[0]?.pattern, 'crowd');
    await assert.rejects(verifier.verify(token + 'x'));
    await assert.rejects(verifier.verify(token + 'x'));
    assert.equal(verifier.verifications, 2, 'a refused token is remembered too');
  });

  test('200 clients connecting at once with one token cost the node one signature check', async () => {
    const verifier = node.server.auth.tokens;
    assert.ok(verifier);
    const token = await signToken({ secret: TEST_SECRET, channels: ['crowd.*'], subject: 'crowd' });
    const before = verifier.verifications;
    const streams = await Promise.all(Array.from({ length: 200 }, (_, i) => openStream(`${node.url}/sub?token=${token}&channel=crowd.${i % 10}`)));
    assert.ok(streams.every((s) => s.status === 200));
    assert.equal(verifier.verifications - before, 1);
    const metrics = await (await fetch(`${node.url}/metrics`, { headers: { Authorization: `Bearer ${METRICS_TOKEN}` } })).text();
    assert.match(metrics, /^herald_token_verifications_total \d+/m);
    for (const s of streams) s.close();
    await eventually(() => node.server.node.sessionCount() === 0);
  });

  test('a token signed with the previous secret is accepted until its end date', async () => {
    const token = await signToken({ secret: OLD_SECRET, channels: ['rotated'] });
    assert.equal((await answer(`${node.url}/sub?token=${token}`)).status, 200);
  });

  test('RS256 and ES256 with public key files; a JWKS bound to an issuer serves only that issuer', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-jwt-'));
    const es = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const ed = generateKeyPairSync('ed25519');
    writeFileSync(join(dir, 'es.pem'), es.publicKey.export({ type: 'spki', format: 'pem' }));
    const jwk = { ...(await exportJWK(ed.publicKey)), kid: 'ed1', alg: 'EdDSA' };
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [jwk] }));
    const s = await startServer({
      dev: false,
      jwtAlgorithms: ['ES256', 'EdDSA'],
      jwtPublicKeys: [join(dir, 'es.pem')],
      jwks: [`https://idp.example ${join(dir, 'jwks.json')}`],
    });
    try {
      const esToken = await signToken({ secret: es.privateKey, algorithm: 'ES256', channels: ['a'] });
      assert.equal((await answer(`${s.url}/sub?token=${esToken}`)).status, 200);
      const edGood = await signToken({ secret: ed.privateKey, algorithm: 'EdDSA', channels: ['a'], issuer: 'https://idp.example' });
      assert.equal((await answer(`${s.url}/sub?token=${edGood}`)).status, 200);
      const edOther = await signToken({ secret: ed.privateKey, algorithm: 'EdDSA', channels: ['a'], issuer: 'https://other.example' });
      assert.equal((await answer(`${s.url}/sub?token=${edOther}`)).status, 401);
      const hs = await signToken({ secret: TEST_SECRET, channels: ['a'] });
      assert.equal((await answer(`${s.url}/sub?token=${hs}`)).status, 401, 'HS256 is not configured there');
    } finally {
      await s.close();
    }
  });
  test('a JWKS URL is fetched once and cached; an unreachable one answers 503, not 401', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = { ...(await exportJWK(rsa.publicKey)), kid: 'r1', alg: 'RS256' };
    let fetches = 0;
    const idp = http.createServer((_req, res) => {
      fetches++;
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r));
    const port = (idp.address() as AddressInfo).port;
    const s = await startServer({ dev: false, jwtAlgorithms: ['RS256'], jwks: [`http://127.0.0.1:${port}/jwks.json`] });
    const down = await startServer({ dev: false, jwtAlgorithms: ['RS256'], jwks: ['http://127.0.0.1:1/jwks.json'] });
    try {
      const sign = (sub: string): Promise<string> =>
        signToken({ secret: rsa.privateKey, algorithm: 'RS256', channels: ['a'], subject: sub });
      assert.equal((await answer(`${s.url}/sub?token=${await sign('1')}`)).status, 200);
      assert.equal((await answer(`${s.url}/sub?token=${await sign('2')}`)).status, 200);
      assert.equal(fetches, 1);
      const refused = await answer(`${down.url}/sub?token=${await sign('3')}`);
      assert.equal(refused.status, 503);
      assert.equal(refused.body.error?.code, 'unavailable');
    } finally {
      await s.close();
      await down.close();
      idp.close();
    }
  });
});

describe('namespaces', () => {
  test('anonymous subscribe only where the namespace allows it; a token holder may add anonymous channels', async () => {
    assert.equal((await answer(`${node.url}/sub?channel=public:news`)).status, 200);
    assert.equal((await answer(`${node.url}/sub?channel=chat:room`)).status, 401);
    assert.equal((await answer(`${node.url}/sub?channel=news`)).status, 401);
    assert.equal((await answer(`${node.url}/sub?channel=other:x`)).status, 401, 'an unknown prefix is the default namespace');
    const token = await signToken({ secret: TEST_SECRET, channels: ['mine'] });
    assert.equal((await answer(`${node.url}/sub?token=${token}&channel=mine&channel=public:news`)).status, 200);
  });

  test('maxSubscribers: a full channel answers 503 and the others stay', async () => {
    const token = await signToken({ secret: TEST_SECRET, channels: ['chat:*'] });
    const url = `${node.url}/sub?token=${token}&channel=chat:full`;
    const a = await openStream(url);
    const b = await openStream(url);
    const c = await answer(url);
    assert.equal(c.status, 503);
    assert.match(c.body.error?.message ?? '', /limit of 2/);
    a.close();
    await eventually(() => node.server.node.hub.memberCount('chat:full') === 1);
    const d = await openStream(url);
    assert.equal(d.status, 200);
    b.close();
    d.close();
  });

  test('history policy by namespace; client publish by namespace or by the grant', () => {
    const policy = node.server.policy;
    assert.deepEqual(policy.history('public:news'), { size: 10, ttlMs: 60_000, metaTtlMs: 3_600_000 });
    assert.equal(policy.history('chat:room'), undefined);
    const ns = node.server.auth;
    const grant = { channels: [{ pattern: 'chat:', prefix: true }, { pattern: 'news', prefix: false, publish: true }] };
    assert.equal(ns.mayClientPublish('chat:room', grant), true, 'chat allows client publish to subscribers');
    assert.equal(ns.mayClientPublish('chat:room', undefined), false, 'but not anonymously');
    assert.equal(ns.mayClientPublish('news', grant), true, 'the grant gives the right');
    assert.equal(ns.mayClientPublish('public:news', undefined), false);
  });

  test('a publish API key limited to a namespace publishes there only (403 elsewhere)', async () => {
    assert.equal((await publish(node.url, { channel: 'chat:room', data: 'x' }, SCOPED_KEY)).status, 200);
    const other = await publish(node.url, { channel: 'news', data: 'x' }, SCOPED_KEY);
    assert.equal(other.status, 403);
    assert.equal((await publish(node.url, { channels: ['chat:a', 'public:b'], data: 'x' }, SCOPED_KEY)).status, 403);
  });

  test('glob characters in channel names are ordinary characters', async () => {
    const star = await openStream(`${node.url}/sub?channel=${encodeURIComponent('public:a*')}`);
    const q = await openStream(`${node.url}/sub?channel=${encodeURIComponent('public:[ab]?')}`);
    await publish(node.url, { channel: 'public:ab', data: 'not for globs' });
    await publish(node.url, { channel: 'public:a*', data: 'star' });
    await publish(node.url, { channel: 'public:[ab]?', data: 'brackets' });
    // (public: keeps history, so lines carry a message id as a fourth element.)
    assert.deepEqual(parse((await star.waitLines(1))[0] ?? '').slice(0, 3), ['message', 'public:a*', 'star']);
    assert.deepEqual(parse((await q.waitLines(1))[0] ?? '').slice(0, 3), ['message', 'public:[ab]?', 'brackets']);
    star.close();
    q.close();
  });

  test('bad namespace settings stop start-up naming the setting', () => {
    const bad = (namespaces: unknown): string => {
      try {
        resolveConfig({ overrides: { dev: true, namespaces: namespaces as Record<string, never> } });
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return err.message;
      }
      return 'accepted';
    };
    assert.match(bad({ chat: { anonymus: true } }), /namespaces\.chat\.anonymus: unknown rule/);
    assert.match(bad({ chat: { maxSubscribers: -1 } }), /maxSubscribers/);
    assert.match(bad({ 'a:b': {} }), /namespace name/);
    assert.match(bad([]), /must be an object/);
    assert.throws(() => resolveConfig({ env: { HERALD_NAMESPACES: '{not json' }, overrides: { dev: true } }), /HERALD_NAMESPACES: is not valid JSON/);
    assert.equal(resolveConfig({ env: { HERALD_NAMESPACES: '{"public":{"anonymous":true}}' }, overrides: { dev: true } }).namespaces['public']?.anonymous, true);
  });
});

describe('authorization settings', () => {
  const refusal = (overrides: Record<string, unknown>, env: Record<string, string> = {}): string => {
    try {
      resolveConfig({ overrides: { secret: TEST_SECRET, ...overrides }, env });
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return err.message;
    }
    return 'accepted';
  };

  test('contradictory or unsafe authorization settings stop start-up naming the setting', () => {
    assert.match(refusal({ previousSecret: OLD_SECRET }), /HERALD_PREVIOUS_SECRET_UNTIL: required/);
    assert.match(refusal({ previousSecret: 'changeme', previousSecretUntil: '2030-01-01' }), /HERALD_PREVIOUS_SECRET: too weak/);
    assert.match(refusal({ previousSecretUntil: 'next week' }), /previousSecretUntil: "next week" is not an ISO 8601 date/);
    assert.match(refusal({ jwtAlgorithms: ['RS256'] }), /need jwtPublicKeys or jwks/);
    assert.match(refusal({ jwtAlgorithms: ['none'] }), /"none" is not one of/);
    assert.match(refusal({ jwtPublicKeys: ['/nonexistent.pem'], jwtAlgorithms: ['RS256'] }), /accepted/, 'files are read at start');
    assert.match(refusal({}, { HERALD_SCOPED_API_KEYS: '[{"key":"short","namespaces":[]}]' }), /HERALD_SCOPED_API_KEYS\[0\]\.key: must be a string/);
    assert.match(refusal({ tokenCookie: 'bad cookie' }), /not a cookie name/);
    assert.equal(refusal({}, { HERALD_API_KEY: 'k-0123456789abcdef' }), 'accepted');
    assert.deepEqual(resolveConfig({ overrides: { secret: TEST_SECRET }, env: { HERALD_API_KEY: 'k-0123456789abcdef' } }).apiKeys, [
      'k-0123456789abcdef',
    ]);
  });

  test('an unreadable public key file stops the node from starting', async () => {
    await assert.rejects(startServer({ dev: false, jwtAlgorithms: ['RS256'], jwtPublicKeys: ['/nonexistent.pem'] }), /cannot read/);
  });
});

describe('herald key and herald token', () => {
  const cli = (args: string[]): { status: number | null; out: string; err: string } => {
    const r = spawnSync(process.execPath, ['bin/herald.js', ...args], {
      env: { PATH: process.env['PATH'] ?? '', HERALD_SECRET: TEST_SECRET },
      encoding: 'utf8',
    });
    return { status: r.status, out: r.stdout.trim(), err: r.stderr.trim() };
  };

  test('a key and a token printed by the CLI subscribe on a node with the same secret', async () => {
    const key = cli(['key', 'cli.channel', '--ttl', '60']);
    assert.equal(key.status, 0, key.err);
    const token = cli(['token', '--channel', 'cli.other', '--sub', 'u1', '--ttl', '60']);
    assert.equal(token.status, 0, token.err);
    const a = await openStream(`${node.url}/sub?key=${key.out}`);
    const b = await openStream(`${node.url}/sub?token=${token.out}`);
    await publish(node.url, { channel: 'cli.channel', data: '1' });
    await publish(node.url, { channel: 'cli.other', data: '2' });
    assert.deepEqual(parse((await a.waitLines(1))[0] ?? ''), ['message', key.out, '1']);
    assert.deepEqual(parse((await b.waitLines(1))[0] ?? ''), ['message', 'cli.other', '2']);
    a.close();
    b.close();
  });

  test('bad arguments exit 2 with one line', () => {
    for (const args of [['key'], ['key', ''], ['token'], ['token', '--channel', 'x', '--ttl', 'soon']]) {
      const r = cli(args);
      assert.equal(r.status, 2, args.join(' '));
      assert.equal(r.err.split('\n').length, 1, r.err);
    }
  });
});
