/**
 * Issue 15, finding 2 and three of its weaker points, against a real node in production mode with a control
 * subscriber (helpers/guard.ts):
 * - a flood of refused tokens of one length (60,000 characters: V8 hashes strings over 16,383 characters by length
 *   alone) on /ws `connect`, the upgrade URL and `Authorization`: credentials are checked for length and shape before
 *   any cache lookup and the caches are keyed by SHA-256, so the control's latency holds (p99 under 100 ms);
 * - `iat` in the future beyond the leeway is refused;
 * - a WebSocket publish just after the token's `exp` is refused (it used to pass until the node's next 1 s tick);
 * - `refresh` keeps the subject, and "no subject" counts as one.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decodeJwt, SignJWT } from 'jose';
import { fileURLToPath } from 'node:url';
import { signToken } from '../src/auth/jwt.js';
import { killAll, spawnTracked } from './helpers/cli.js';
import { answer, guarded } from './helpers/guard.js';
import { percentile, startPinger } from './helpers/hostile.js';
import { longToken } from './helpers/token-flood.js';
import { openStream, startServer, TEST_SECRET, type TestServer } from './helpers/server.js';
import { openWs, type Frame, type WsClient } from './helpers/ws.js';

const LONG = 60_000;

let node: TestServer;
let controlToken: string;

before(async () => {
  node = await startServer({
    dev: false,
    // guard.ts counts lines, and a heartbeat is an empty line: none during a long run on a loaded machine.
    heartbeatSeconds: 3600,
    // Raised so that 60 KB tokens reach the credential check on the URL and header paths too (an operator may
    // raise them; the check must hold whatever they are).
    maxUrlBytes: 64 * 1024,
    maxHeaderBytes: 64 * 1024,
  });
  controlToken = await token(['control']);
});
after(async () => {
  await killAll();
  await node.close();
});

function token(channels: string[], extra: { subject?: string; ttlSeconds?: number; publish?: boolean } = {}): Promise<string> {
  return signToken({ secret: TEST_SECRET, channels, ttlSeconds: extra.ttlSeconds ?? 600, ...extra });
}

const control = (): { url: string; channel: string } => ({ url: `${node.url}/sub?token=${controlToken}`, channel: 'control' });

/** The attacker runs as its own process (helpers/token-flood.ts): its CPU is not the node's event loop's. */
const FLOOD = fileURLToPath(new URL('./helpers/token-flood.js', import.meta.url));
async function flood(args: (string | number)[]): Promise<Record<string, number>> {
  const child = spawnTracked(process.execPath, [FLOOD, ...args.map(String)]);
  const done = await child.exited;
  assert.equal(done.code, 0, done.stderr);
  return JSON.parse(done.stdout) as Record<string, number>;
}
const floodConnect = (count: number, length: number, sockets = 2, window = 8): Promise<Record<string, number>> =>
  flood(['connect', `${node.url.replace(/^http/, 'ws')}/ws`, count, length, sockets, window]);

/** The control's round trips with no attack, past the first ones' warm-up: what the (shared) machine gives anyway. */
async function idleRoundTrips(): Promise<number[]> {
  const idle = await startPinger(node.url, 5);
  await new Promise((r) => setTimeout(r, 500));
  return (await idle.stop()).slice(3);
}

/** Under 100 ms; on a machine too loaded to give that with no attack at all, within 100 ms of what it gives. */
function assertP99(rtts: number[], baseline: number[]): void {
  const p99 = percentile(rtts, 99);
  const bound = Math.max(100, percentile(baseline, 99) + 100);
  assert.ok(p99 < bound, `control p99 ${p99.toFixed(1)} ms (bound ${bound.toFixed(0)} ms)`);
}

describe('refused tokens of one length (finding 2)', () => {
  test('3,000 refused 60,000-character tokens on /ws connect, and 8,000-character JWT-shaped ones: cheap 401s, control p99 under 100 ms', async (t) => {
    await guarded(node, control(), async ({ tick }) => {
      const baseline = await idleRoundTrips();
      const pinger = await startPinger(node.url, 5);
      const started = performance.now();
      const longCodes = await floodConnect(3000, LONG);
      await tick();
      // Under the length bound and well shaped: these reach the caches and a signature check, keyed by digest.
      const shapedCodes = await floodConnect(1500, 8000);
      const elapsed = performance.now() - started;
      await tick();
      const rtts = await pinger.stop();
      assert.deepEqual(longCodes, { unauthorized: 3000 });
      assert.deepEqual(shapedCodes, { unauthorized: 1500 });
      const p99 = percentile(rtts, 99);
      t.diagnostic(
        `4,500 refused connects in ${Math.round(elapsed)} ms; control ping p50 ${percentile(rtts, 50).toFixed(1)} ms, ` +
          `p99 ${p99.toFixed(1)} ms, max ${Math.max(...rtts).toFixed(1)} ms over ${rtts.length} pings ` +
          `(no attack: p99 ${percentile(baseline, 99).toFixed(1)} ms)`,
      );
      assert.ok(rtts.length > 20, 'the control kept pinging during the flood');
      // Before the fix: p99 2,541 ms, and the flood took 176 s.
      assertP99(rtts, baseline);
    });
  });

  test('refused 60,000-character tokens on the upgrade URL, /sub?token= and Authorization: Bearer: 401 each, control p99 under 100 ms', async (t) => {
    await guarded(node, control(), async () => {
      const baseline = await idleRoundTrips();
      const pinger = await startPinger(node.url, 5);
      const started = performance.now();
      const codes = await flood(['url', node.url, 900, LONG, 6]);
      const elapsed = performance.now() - started;
      const rtts = await pinger.stop();
      assert.deepEqual(codes, { 'ws:401': 300, 'sub:401:unauthorized': 300, 'bearer:401:unauthorized': 300 });
      t.diagnostic(
        `900 refused requests in ${Math.round(elapsed)} ms; control ping p99 ${percentile(rtts, 99).toFixed(1)} ms, ` +
          `max ${Math.max(...rtts).toFixed(1)} ms over ${rtts.length} pings (no attack: p99 ${percentile(baseline, 99).toFixed(1)} ms)`,
      );
      assertP99(rtts, baseline);
    });
  });

  test('a token over the length bound or not shaped as a JWT is refused by its shape, and says so', async () => {
    const c = await openWs(`${node.url}/ws`);
    const tooLong = await c.request('connect', { token: longToken(1, 8193) });
    assert.equal(tooLong.error?.code, 'unauthorized');
    assert.match(tooLong.error?.message ?? '', /longer than 8192/);
    for (const bad of ['abc', 'a.b', 'a.b.c.d', 'a b.c.d', 'a.b.c=', '\u00e9.b.c']) {
      const a = await c.request('connect', { token: bad });
      assert.equal(a.error?.code, 'unauthorized', bad);
      assert.match(a.error?.message ?? '', /not a JWT/, bad);
    }
    // A good token still connects on the same socket.
    assert.equal((await c.request('connect', { token: await token(['news']) })).type, 'reply');
    c.close();
    await c.closed;
  });
});

describe('iat in the future (weaker point)', () => {
  const signed = (iatOffsetSeconds: number): Promise<string> => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ channels: ['iat'] })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuedAt(now + iatOffsetSeconds)
      .setExpirationTime(now + 3600)
      .sign(new TextEncoder().encode(TEST_SECRET));
  };

  test('an iat beyond the leeway (5 s) is refused with 401 "issued in the future"; within it, accepted', async () => {
    await guarded(node, control(), async () => {
      const future = await signed(600);
      const a = await answer(`${node.url}/sub?token=${future}`);
      assert.equal(a.status, 401);
      assert.equal(a.body.error?.code, 'unauthorized');
      assert.match(a.body.error?.message ?? '', /issued in the future \(iat\)/);
      const c = await openWs(`${node.url}/ws`);
      const refused = await c.request('connect', { token: future });
      assert.equal(refused.error?.code, 'unauthorized');
      assert.match(refused.error?.message ?? '', /iat/);
      // Clock skew inside the leeway is tolerated.
      assert.equal((await c.request('connect', { token: await signed(3) })).type, 'reply');
      c.close();
      await c.closed;
      assert.equal((await answer(`${node.url}/sub?token=${await signed(-60)}`)).status, 200);
    });
  });
});

describe('WebSocket publish at expiry (weaker point)', () => {
  test('a publish just after the token expires is refused (token_expired), never delivered', async () => {
    await guarded(node, control(), async () => {
      const sub = await openStream(`${node.url}/sub?token=${await token(['exp.ch'])}`);
      const outcomes: string[] = [];
      for (let round = 0; round < 3; round++) {
        const short = await token(['exp.ch'], { ttlSeconds: 2, publish: true });
        const expMs = (decodeJwt(short).exp ?? 0) * 1000;
        const c = await openWs(`${node.url}/ws?token=${short}`);
        assert.equal((await c.request('publish', { channel: 'exp.ch', data: `in-time-${round}` })).type, 'reply');
        await new Promise((r) => setTimeout(r, Math.max(0, expMs - Date.now() + 5)));
        outcomes.push(await publishOrClose(c, `too-late-${round}`));
        c.close();
        await c.closed;
      }
      // The node's ticker may close the connection first (3003): either way nothing late is delivered.
      assert.ok(outcomes.every((o) => o === 'token_expired' || o === 'closed:3003'), outcomes.join(', '));
      assert.ok(outcomes.includes('token_expired'), `the publish itself was refused at least once: ${outcomes.join(', ')}`);
      await new Promise((r) => setTimeout(r, 200));
      const got = (await sub.waitLines(3)).map((l) => (JSON.parse(l) as string[])[2]);
      assert.deepEqual(got, ['in-time-0', 'in-time-1', 'in-time-2']);
      assert.equal(sub.lines.length, 3, `nothing after expiry was delivered: ${sub.lines.join(' ')}`);
      sub.close();
    });
  });
});

/** Publish and say what came of it: the error code, "reply", or the close code if the connection closed first. */
async function publishOrClose(c: WsClient, data: string): Promise<string> {
  const closed = c.closed.then((x) => `closed:${x.code}`);
  const answered = c.request('publish', { channel: 'exp.ch', data }).then(
    (a: Frame) => (a.type === 'reply' ? 'reply' : (a.error?.code ?? '?')),
    () => closed,
  );
  return Promise.race([answered, closed]);
}

describe('refresh keeps the subject (weaker point)', () => {
  test('a connection whose token has no sub cannot refresh into a user\'s token, a user cannot refresh into none, nor into another user', async () => {
    await guarded(node, control(), async () => {
      const anon = await openWs(`${node.url}/ws`);
      assert.equal((await anon.request('connect', { token: await token(['shared']) })).type, 'reply');
      const toAlice = await anon.request('refresh', { token: await token(['alice.inbox'], { subject: 'alice' }) });
      assert.equal(toAlice.error?.code, 'forbidden');
      assert.match(toAlice.error?.message ?? '', /same subject/);
      // The refused refresh changed nothing: alice's channel is still not granted.
      assert.equal((await anon.request('subscribe', { channel: 'alice.inbox' })).error?.code, 'forbidden');
      // Another token without a subject is the same (absent) subject: accepted.
      assert.equal((await anon.request('refresh', { token: await token(['shared']) })).type, 'reply');
      anon.close();
      await anon.closed;

      // The same with the first token in the upgrade URL.
      const viaUrl = await openWs(`${node.url}/ws?token=${await token(['shared'])}`);
      assert.equal((await viaUrl.request('refresh', { token: await token(['alice.inbox'], { subject: 'alice' }) })).error?.code, 'forbidden');
      viaUrl.close();
      await viaUrl.closed;

      const bob = await openWs(`${node.url}/ws`);
      assert.equal((await bob.request('connect', { token: await token(['bob.inbox'], { subject: 'bob' }) })).type, 'reply');
      assert.equal((await bob.request('refresh', { token: await token(['bob.inbox']) })).error?.code, 'forbidden');
      assert.equal((await bob.request('refresh', { token: await token(['alice.inbox'], { subject: 'alice' }) })).error?.code, 'forbidden');
      const same = await bob.request('refresh', { token: await token(['bob.inbox'], { subject: 'bob', ttlSeconds: 1200 }) });
      assert.equal(same.type, 'reply');
      assert.equal(same.result?.['subject'], 'bob');
      bob.close();
      await bob.closed;
    });
  });
});
