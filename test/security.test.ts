/**
 * SECURITY-TESTS.md, row by row. Each test runs its attack with a control subscriber attached (helpers/guard.ts):
 * the control keeps receiving in order, the node keeps answering, and session/subscription counts return to
 * baseline. Rows tested in other files say which.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { signToken } from '../src/auth/jwt.js';
import { sealChannel } from '../src/auth/sealed-key.js';
import { corsHeaders } from '../src/auth/origin.js';
import { createLogger } from '../src/util/log.js';
import { answer, guarded } from './helpers/guard.js';
import { RawClient } from './helpers/raw.js';
import { openStream, publish, startServer, TEST_API_KEY, TEST_SECRET, type TestServer } from './helpers/server.js';

const OLD_SECRET = 'old-secret-zyxwvutsrqponmlkjihgfedcba-9876543210';
const OTHER_SECRET = 'other-secret-ABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789';
const AUD = 'herald-test';
const ISS = 'https://idp.example';
const ORIGIN = 'https://app.example';
const MAX_CHANNELS = 5;

const dir = mkdtempSync(join(tmpdir(), 'herald-sec-'));
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaPem = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString();
writeFileSync(join(dir, 'rsa.pem'), rsaPem);

const logLines: string[] = [];
let node: TestServer;
let controlToken: string;

before(async () => {
  node = await startServer(
    {
      dev: false,
      maxChannelsPerConnection: MAX_CHANNELS,
      maxBodyBytes: 1024,
      jwtAlgorithms: ['HS256', 'RS256'],
      jwtPublicKeys: [join(dir, 'rsa.pem')],
      jwtAudience: [AUD],
      jwtIssuers: [ISS],
      previousSecret: OLD_SECRET,
      previousSecretUntil: new Date(Date.now() - 60_000).toISOString(),
      namespaces: { public: { anonymous: true } },
      allowedOrigins: [ORIGIN],
      logLevel: 'debug',
    },
    { logger: createLogger('debug', (l) => logLines.push(l)) },
  );
  controlToken = await token(['control']);
});
after(() => node.close());

function token(channels: string[], extra: { secret?: string; ttlSeconds?: number; aud?: string; iss?: string } = {}): Promise<string> {
  return signToken({
    secret: extra.secret ?? TEST_SECRET,
    channels,
    ttlSeconds: extra.ttlSeconds ?? 60,
    audience: extra.aud ?? AUD,
    issuer: extra.iss ?? ISS,
  });
}

const control = (): { url: string; channel: string } => ({ url: `${node.url}/sub?token=${controlToken}`, channel: 'control' });
const sub = (query: string): string => `${node.url}/sub?${query}`;
const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');

async function expectRefusal(url: string, status: number, code: string, headers: Record<string, string> = {}): Promise<string> {
  const a = await answer(url, headers);
  assert.equal(a.status, status, `${url.slice(0, 80)}: ${JSON.stringify(a.body)}`);
  assert.equal(a.body.error?.code, code);
  return a.body.error?.message ?? '';
}

test('row 1: a JWT with alg "none" is refused with 401', async () => {
  await guarded(node, control(), async () => {
    const now = Math.floor(Date.now() / 1000);
    const none = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ channels: ['control'], exp: now + 60, aud: AUD, iss: ISS })}.`;
    await expectRefusal(sub(`token=${none}`), 401, 'unauthorized');
    await expectRefusal(sub('channel=control'), 401, 'unauthorized', { Authorization: `Bearer ${none}` });
  });
});

test('row 2: an HS256 token signed with the configured RSA public key as HMAC secret is refused with 401', async () => {
  await guarded(node, control(), async () => {
    const forged = await signToken({ secret: rsaPem, channels: ['control'], ttlSeconds: 60, audience: AUD, issuer: ISS });
    await expectRefusal(sub(`token=${forged}`), 401, 'unauthorized');
    // The genuine RS256 token is accepted: the key is configured, only the algorithm confusion is refused.
    const genuine = await signToken({ secret: rsa.privateKey, algorithm: 'RS256', channels: ['control'], audience: AUD, issuer: ISS });
    assert.equal((await answer(sub(`token=${genuine}`))).status, 200);
    // A node that pins RS256 only refuses any HS256 token, even one made with its own secret.
    const rsOnly = await startServer({ dev: false, jwtAlgorithms: ['RS256'], jwtPublicKeys: [join(dir, 'rsa.pem')] });
    try {
      const hs = await signToken({ secret: TEST_SECRET, channels: ['x'] });
      const a = await answer(`${rsOnly.url}/sub?token=${hs}`);
      assert.equal(a.status, 401);
      assert.match(a.body.error?.message ?? '', /algorithm/);
    } finally {
      await rsOnly.close();
    }
  });
});

test('row 3: an expired token and a token not yet valid beyond the leeway answer 401 saying why', async () => {
  await guarded(node, control(), async () => {
    const now = Math.floor(Date.now() / 1000);
    const { SignJWT } = await import('jose');
    const key = new TextEncoder().encode(TEST_SECRET);
    const expired = await new SignJWT({ channels: ['control'] }).setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime(now - 60).setAudience(AUD).setIssuer(ISS).sign(key);
    const msg = await expectRefusal(sub(`token=${expired}`), 401, 'token_expired');
    assert.match(msg, /expired/);
    const early = await new SignJWT({ channels: ['control'] }).setProtectedHeader({ alg: 'HS256' })
      .setNotBefore(now + 60).setExpirationTime(now + 120).setAudience(AUD).setIssuer(ISS).sign(key);
    assert.match(await expectRefusal(sub(`token=${early}`), 401, 'unauthorized'), /not yet valid/);
    // Within the leeway (5 s) a clock a little behind is tolerated.
    const skewed = await new SignJWT({ channels: ['control'] }).setProtectedHeader({ alg: 'HS256' })
      .setNotBefore(now + 2).setExpirationTime(now + 120).setAudience(AUD).setIssuer(ISS).sign(key);
    assert.equal((await answer(sub(`token=${skewed}`))).status, 200);
  });
});

test('row 4: a token without exp, or with the wrong aud or iss, answers 401', async () => {
  await guarded(node, control(), async () => {
    const { SignJWT } = await import('jose');
    const key = new TextEncoder().encode(TEST_SECRET);
    const noExp = await new SignJWT({ channels: ['control'] }).setProtectedHeader({ alg: 'HS256' })
      .setAudience(AUD).setIssuer(ISS).sign(key);
    assert.match(await expectRefusal(sub(`token=${noExp}`), 401, 'unauthorized'), /exp/);
    assert.match(await expectRefusal(sub(`token=${await token(['control'], { aud: 'other' })}`), 401, 'unauthorized'), /audience/);
    assert.match(await expectRefusal(sub(`token=${await token(['control'], { iss: 'https://evil.example' })}`), 401, 'unauthorized'), /issuer/);
  });
});

test('row 5: a token or key made with a rotated-out secret after its end date answers 401', async () => {
  await guarded(node, control(), async () => {
    await expectRefusal(sub(`token=${await token(['control'], { secret: OLD_SECRET })}`), 401, 'unauthorized');
    await expectRefusal(sub(`key=${sealChannel('control', { secret: OLD_SECRET })}`), 401, 'unauthorized');
  });
});

test('row 6: a token granting A used for B, and a prefix grant a.* used for ab, answer 403', async () => {
  await guarded(node, control(), async () => {
    await expectRefusal(sub(`token=${await token(['A'])}&channel=B`), 403, 'forbidden');
    const prefix = await token(['a.*']);
    await expectRefusal(sub(`token=${prefix}&channel=ab`), 403, 'forbidden');
    await expectRefusal(sub(`token=${prefix}&channel=a`), 403, 'forbidden');
    assert.equal((await answer(sub(`token=${prefix}&channel=a.b`))).status, 200);
  });
});

test('row 7: tampered, truncated, expired and foreign sealed keys answer 401, the same whether or not the channel exists', async () => {
  await guarded(node, control(), async () => {
    const bad = (channel: string): string[] => {
      const good = sealChannel(channel, { secret: TEST_SECRET });
      const flipped = Buffer.from(good, 'base64url');
      flipped[flipped.length - 20] = (flipped[flipped.length - 20] ?? 0) ^ 0x01;
      const flippedHeader = Buffer.from(good, 'base64url');
      flippedHeader[2] = (flippedHeader[2] ?? 0) ^ 0x80;
      return [
        flipped.toString('base64url'),
        flippedHeader.toString('base64url'),
        good.slice(0, -8),
        good.slice(0, 20),
        sealChannel(channel, { secret: TEST_SECRET, ttlSeconds: 1, now: Date.now() - 10_000 }),
        sealChannel(channel, { secret: OTHER_SECRET }),
      ];
    };
    // "control" has a live subscriber; the other channel was never used.
    const existing = bad('control');
    const unknown = bad('never-used-' + Date.now());
    for (let i = 0; i < existing.length; i++) {
      const a = await answer(sub(`key=${existing[i]}`));
      const b = await answer(sub(`key=${unknown[i]}`));
      assert.equal(a.status, 401, `case ${i}`);
      assert.deepEqual(a.body, b.body, `case ${i}: same answer for an existing and an unknown channel`);
      assert.equal(a.body.error?.code, 'unauthorized');
    }
  });
});

test('row 8: a channel name over 255 bytes, with a control character, or empty answers 400', async () => {
  await guarded(node, control(), async () => {
    await expectRefusal(sub(`channel=public:${'x'.repeat(300)}`), 400, 'invalid_channel');
    await expectRefusal(sub(`channel=${encodeURIComponent('public:a\u0001b')}`), 400, 'invalid_channel');
    await expectRefusal(sub('channel='), 400, 'invalid_channel');
    await expectRefusal(sub(`token=${controlToken}&channel=${encodeURIComponent('\u007f')}`), 400, 'invalid_channel');
    const res = await publish(node.url, { channel: 'a\nb', data: 'x' });
    assert.equal(res.status, 400);
  });
});

test('row 9: the publish API with no key, a wrong key or a key of the wrong length answers 401', async () => {
  await guarded(node, control(), async () => {
    const noKey = await fetch(`${node.url}/api/publish`, { method: 'POST', body: '{"channel":"control","data":"forged"}' });
    assert.equal(noKey.status, 401);
    for (const key of [TEST_API_KEY.replace(/.$/, 'X'), TEST_API_KEY + 'extra', 'k', '']) {
      const res = await publish(node.url, { channel: 'control', data: 'forged' }, key);
      assert.equal(res.status, 401, `key ${String(key)}`);
    }
  });
});

test('row 10: a publish body over the limit answers 413; invalid JSON or missing data answers 400', async () => {
  await guarded(node, control(), async () => {
    assert.equal((await publish(node.url, { channel: 'control', data: 'x'.repeat(2048) })).status, 413);
    assert.equal((await publish(node.url, '{"channel":"control","data":')).status, 400);
    assert.equal((await publish(node.url, { channel: 'control' })).status, 400);
  });
});

test('row 11: more channels than the limit answers 400 naming the limit, and subscribes nothing', async () => {
  await guarded(node, control(), async (g) => {
    const many = Array.from({ length: MAX_CHANNELS + 1 }, (_, i) => `channel=public:c${i}`).join('&');
    assert.match(await expectRefusal(sub(many), 400, 'too_many_channels'), new RegExp(`${MAX_CHANNELS}`));
    const wide = await token(Array.from({ length: MAX_CHANNELS + 1 }, (_, i) => `c${i}`));
    assert.match(await expectRefusal(sub(`token=${wide}`), 400, 'too_many_channels'), new RegExp(`${MAX_CHANNELS}`));
    const keys = Array.from({ length: MAX_CHANNELS + 1 }, (_, i) => `key=${sealChannel(`k${i}`, { secret: TEST_SECRET })}`);
    await expectRefusal(sub(keys.join('&')), 400, 'too_many_channels');
    await g.tick();
  });
});

test('row 12: WebSocket upgrade from an origin not allowed: see test/websocket.test.ts (checkOrigin is tested below)', async () => {
  const check = node.server.auth.checkOrigin;
  assert.equal(check('https://evil.example'), false);
  assert.equal(check(ORIGIN), true);
  assert.equal(check(undefined), true, 'non-browser clients send no Origin');
});

test('row 13: a stream from an origin not allowed gets no Access-Control-Allow-Origin; credentials never with *', async () => {
  await guarded(node, control(), async () => {
    for (const path of ['sub', 'sse']) {
      const evil = await answer(`${node.url}/${path}?channel=public:news`, { Origin: 'https://evil.example' });
      assert.equal(evil.status, 200);
      assert.equal(evil.headers['access-control-allow-origin'], undefined);
      assert.equal(evil.headers['access-control-allow-credentials'], undefined);
      const ok = await answer(`${node.url}/${path}?channel=public:news`, { Origin: ORIGIN });
      assert.equal(ok.headers['access-control-allow-origin'], ORIGIN);
      assert.equal(ok.headers['access-control-allow-credentials'], 'true');
    }
    // The preflight of a cross-origin fetch() with Authorization: only for allowed origins.
    const preflight = (origin: string): Promise<Response> =>
      fetch(`${node.url}/sub?channel=public:news`, {
        method: 'OPTIONS',
        headers: { Origin: origin, 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization' },
      });
    const good = await preflight(ORIGIN);
    assert.equal(good.status, 204);
    assert.equal(good.headers.get('access-control-allow-origin'), ORIGIN);
    assert.match(good.headers.get('access-control-allow-headers') ?? '', /Authorization/);
    const bad = await preflight('https://evil.example');
    assert.equal(bad.status, 204);
    assert.equal(bad.headers.get('access-control-allow-origin'), null);
    assert.equal(bad.headers.get('access-control-allow-headers'), null);
    const star = corsHeaders('https://any.example', ['*']);
    assert.equal(star['Access-Control-Allow-Origin'], '*');
    assert.equal(star['Access-Control-Allow-Credentials'], undefined);
  });
});

test('row 14: WebSocket bad frames: see test/websocket.test.ts ("limits and bad frames")', () => {
  assert.ok(ROWS[14]);
});

test('row 15: a client that never sends its request, or sends headers a byte at a time, is closed at the header timeout', async () => {
  const s = await startServer({ dev: false, headersTimeoutMs: 500, namespaces: { public: { anonymous: true } } });
  try {
    await guarded(s, { url: `${s.url}/sub?channel=public:control`, channel: 'public:control' }, async (g) => {
      const silent = new RawClient(s.url);
      const drip = new RawClient(s.url);
      await Promise.all([silent.ready(), drip.ready()]);
      const request = 'GET /sub?channel=public:control HTTP/1.1\r\nHost: localhost\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n';
      let i = 0;
      const timer = setInterval(() => {
        if (drip.closed || i >= request.length) return clearInterval(timer);
        drip.socket.write(request[i++] ?? '');
      }, 30);
      await g.tick();
      const [a, b] = await Promise.all([silent.waitClose(4000), drip.waitClose(4000)]);
      clearInterval(timer);
      assert.ok(a >= 400 && a <= 2000, `silent client closed after ${a} ms`);
      assert.ok(b >= 400 && b <= 2000 && i < request.length, `dripping client closed after ${b} ms`);
    });
  } finally {
    await s.close();
  }
});

test('row 16: a client that stops reading: see test/limits.test.ts ("disconnected as slow")', () => {
  assert.ok(ROWS[16]);
});

test('row 17: a WebSocket peer that vanishes: see test/websocket.test.ts ("heartbeats")', () => {
  assert.ok(ROWS[17]);
});

test('row 18: a connection flood beyond the per-IP and per-node limits answers 429 / 503; existing clients unaffected', async () => {
  const s = await startServer({ dev: false, maxConnectionsPerIp: 3, maxConnections: 4, namespaces: { public: { anonymous: true } } });
  try {
    await guarded(s, { url: `${s.url}/sub?channel=public:control`, channel: 'public:control' }, async (g) => {
      const held = [await openStream(`${s.url}/sub?channel=public:a`), await openStream(`${s.url}/sse?channel=public:b`)];
      const flood = await Promise.all(Array.from({ length: 5 }, () => answer(`${s.url}/sub?channel=public:c`)));
      for (const a of flood) {
        assert.equal(a.status, 429);
        assert.equal(a.body.error?.code, 'too_many_requests');
      }
      await g.tick();
      const other = new RawClient(s.url, { localAddress: '127.0.0.2' });
      await other.write('GET /sub?channel=public:d HTTP/1.1\r\nHost: localhost\r\n\r\n');
      await other.waitFor((r) => r.startsWith('HTTP/1.1 200'), 5000, 'a stream from 127.0.0.2');
      const third = new RawClient(s.url, { localAddress: '127.0.0.3' });
      await third.write('GET /sub?channel=public:d HTTP/1.1\r\nHost: localhost\r\n\r\n');
      await third.waitFor((r) => r.startsWith('HTTP/1.1 503'), 5000, 'a 503 over the node limit');
      for (const h of held) h.close();
      other.destroy();
      third.destroy();
    });
  } finally {
    await s.close();
  }
});

test('row 19: tokens and keys passed in the query string are never written to logs', async () => {
  await guarded(node, control(), async () => {
    const secretToken = await token(['control']);
    const expired = await token(['control'], { ttlSeconds: 1 });
    const key = sealChannel('public:logged', { secret: TEST_SECRET });
    const before = logLines.length;
    const urls = [
      `token=${secretToken}`,
      `token=${secretToken}&channel=elsewhere`,
      `token=${secretToken}x`,
      `key=${key}`,
      `key=${key}x`,
      `key=${key}&channel=${'y'.repeat(300)}`,
      `channel=private&token=${key}`,
    ];
    for (const q of urls) {
      await answer(sub(q));
      await answer(`${node.url}/sse?${q}`);
      await answer(`${node.url}/nowhere?${q}`);
    }
    await answer(`${node.url}/sub?token=${secretToken}`, { Authorization: `Bearer ${secretToken}` });
    await answer(`${node.url}/sub?channel=control`, { Authorization: `Bearer ${expired}x` });
    await publish(node.url, { channel: 'control', data: 'x'.repeat(4096) }, secretToken);
    const written = logLines.slice(before).join('');
    assert.ok(logLines.length > before, 'the refusals were logged (at debug level)');
    for (const s of [secretToken, key, secretToken.split('.')[2] ?? '', key.slice(10, 40)]) {
      assert.equal(written.includes(s), false, `log output holds a credential: ${written.slice(0, 500)}`);
    }
  });
});

test('row 20: outside --dev, an empty or a known-weak secret stops start-up with exit code 2 and one line', async () => {
  const run = (secret: string | undefined): Promise<{ code: number | null; stderr: string }> =>
    new Promise((resolve, reject) => {
      const env: Record<string, string> = { PATH: process.env['PATH'] ?? '' };
      if (secret !== undefined) env['HERALD_SECRET'] = secret;
      const child = spawn(process.execPath, ['bin/herald.js', 'serve', '--port', '0', '--host', '127.0.0.1'], { env });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`herald started with secret ${String(secret)}`));
      }, 10_000);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stderr });
      });
    });
  for (const secret of [undefined, '', 'changeme', 'your-256-bit-secret', 'a'.repeat(40), 'short-but-random-9f8e7d']) {
    const { code, stderr } = await run(secret);
    assert.equal(code, 2, `secret ${JSON.stringify(secret)}`);
    const lines = stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, `one line: ${stderr}`);
    assert.match(lines[0] ?? '', /^herald: invalid setting HERALD_SECRET: /);
  }
});

/** Every row of SECURITY-TESTS.md and where it is tested (rows 21-38: issue 15; 78-86: admin, operator and outage surfaces). */
export const ROWS: Record<number, string> = {
  1: 'test/security.test.ts', 2: 'test/security.test.ts', 3: 'test/security.test.ts', 4: 'test/security.test.ts',
  5: 'test/security.test.ts', 6: 'test/security.test.ts', 7: 'test/security.test.ts', 8: 'test/security.test.ts',
  9: 'test/security.test.ts', 10: 'test/security.test.ts', 11: 'test/security.test.ts',
  12: 'test/security.test.ts (checkOrigin) and test/websocket.test.ts (the upgrade)',
  13: 'test/security.test.ts', 14: 'test/websocket.test.ts', 15: 'test/security.test.ts and test/limits.test.ts',
  16: 'test/limits.test.ts', 17: 'test/websocket.test.ts', 18: 'test/security.test.ts and test/limits.test.ts',
  19: 'test/security.test.ts', 20: 'test/security.test.ts',
  21: 'test/security-crash.test.ts', 22: 'test/security-auth.test.ts', 23: 'test/history-bounds.test.ts',
  24: 'test/security-http.test.ts ("write backpressure")', 25: 'test/zombie.test.ts',
  26: 'test/security-http.test.ts', 27: 'test/security-http.test.ts', 28: 'test/security-http.test.ts',
  29: 'test/security-http.test.ts', 30: 'test/security-auth.test.ts', 31: 'test/security-auth.test.ts',
  32: 'test/security-auth.test.ts', 33: 'test/security-edges.test.ts', 34: 'test/security-edges.test.ts',
  35: 'test/security-http.test.ts', 36: 'test/security-edges.test.ts', 37: 'test/security-fuzz.test.ts',
  38: 'test/history-bounds.test.ts',
  78: 'test/admin-http.test.ts', 79: 'test/admin-http.test.ts', 80: 'test/admin-http.test.ts', 81: 'test/admin-http.test.ts',
  82: 'test/internal-port.test.ts', 83: 'test/publish-raw.test.ts', 84: 'test/logs.test.ts',
  85: 'test/browser/dev-cors.test.ts', 86: 'test/broker-outage.test.ts', 87: 'test/json-data.test.ts',
  60: 'test/presence.test.ts', 61: 'test/presence-redis.test.ts', 62: 'test/presence.test.ts',
  // 100-119: the Pusher protocol (docs/pusher.md).
  100: 'test/pusher.test.ts ("hostile input")', 101: 'test/pusher.test.ts ("hostile input")',
  102: 'test/pusher.test.ts ("private channels")', 103: 'test/pusher.test.ts ("HTTP API")',
  104: 'test/pusher.test.ts ("wrong app key")', 105: 'test/pusher.test.ts ("client events")',
  106: 'test/pusher-redis.test.ts ("forged Pusher control messages")', 107: 'test/pusher.test.ts ("outside --dev")',
  108: 'test/pusher.test.ts ("request head bounds")',
  // 70-77: the auth hook and webhooks (docs/auth-hook.md, docs/webhooks.md).
  70: 'test/auth-hook.test.ts', 71: 'test/auth-hook.test.ts', 72: 'test/auth-hook.test.ts', 73: 'test/auth-hook.test.ts',
  74: 'test/webhooks.test.ts', 75: 'test/auth-hook.test.ts ("at most authHookMaxConcurrent")',
  63: 'test/server-api.test.ts', 64: 'test/server-api.test.ts', 65: 'test/client/presence.test.ts',
  // 39-45: the HTTP parsers (docs/architecture.md "The HTTP seam").
  39: 'test/http-differential.test.ts and test/wire-raw.test.ts', 40: 'test/http-differential.test.ts',
  41: 'test/wire-raw.test.ts', 42: 'test/wire-raw.test.ts', 43: 'test/wire-raw.test.ts',
  44: 'test/http-differential.test.ts',
  // 46-49: the workers of one machine (docs/architecture.md "Workers").
  46: 'test/broker-workers.test.ts ("row 46")',
};

test('every SECURITY-TESTS.md row names test files that exist', () => {
  const here = dirname(fileURLToPath(import.meta.url)); // dist/test
  // Rows 1-38 are contiguous; later rows are numbered in ranges reserved per area, so gaps are expected there.
  for (let row = 1; row <= 38; row++) assert.ok(ROWS[row], `row ${row} has a test`);
  for (const [row, where] of Object.entries(ROWS)) {
    for (const file of where.match(/test\/[\w./-]+\.test\.ts/g) ?? []) {
      const compiled = join(here, '..', file.replace(/\.ts$/, '.js'));
      assert.ok(existsSync(compiled), `row ${row}: ${file} (${compiled})`);
    }
  }
  // The repository's copy of the table (docs/security-tests.md) and ROWS list the same rows.
  const doc = readFileSync(join(here, '..', '..', 'docs', 'security-tests.md'), 'utf8');
  const documented = [...doc.matchAll(/^\| (\d+) \|/gm)].map((m) => Number(m[1]));
  assert.deepEqual(documented, Object.keys(ROWS).map(Number).sort((a, b) => a - b), 'docs/security-tests.md rows = ROWS');
});
