// GET /ws with real credentials (not --dev): tokens in-band and in the URL, sealed keys, the publish right,
// refresh, and expiry closing with 3003.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { signToken } from '../src/auth/jwt.js';
import { sealChannel } from '../src/auth/sealed-key.js';
import { eventually, publish, startServer, TEST_SECRET, type TestServer } from './helpers/server.js';
import { openWs } from './helpers/ws.js';
import { ManualClock } from '../src/util/clock.js';

let node: TestServer;
before(async () => {
  node = await startServer({ dev: false });
});
after(() => node.close());

const token = (channels: string[], extra: { subject?: string; ttlSeconds?: number; publish?: boolean | string[] } = {}) =>
  signToken({ secret: TEST_SECRET, channels, ...extra });

describe('/ws credentials', () => {
  test('connect with a token, then subscribe what it grants (exact and prefix); the rest is refused', async () => {
    const c = await openWs(`${node.url}/ws`);
    assert.equal((await c.request('subscribe', { channel: 'news' })).error?.code, 'unauthorized');
    const connected = await c.request('connect', { token: await token(['news', 'user.42.*'], { subject: '42' }) });
    assert.equal(connected.type, 'reply');
    assert.equal(connected.result?.['subject'], '42');
    assert.equal(typeof connected.result?.['expiresAt'], 'number');
    assert.equal(typeof connected.result?.['client'], 'string');
    assert.equal((await c.request('subscribe', { channel: 'news' })).type, 'reply');
    assert.equal((await c.request('subscribe', { channel: 'user.42.inbox' })).type, 'reply');
    assert.equal((await c.request('subscribe', { channel: 'user.43.inbox' })).error?.code, 'forbidden');
    assert.equal((await c.request('connect', { token: 'x' })).error?.code, 'bad_request');
    await publish(node.url, { channel: 'user.42.inbox', data: 'mail' });
    await c.waitFrames(() => c.messages().length === 1);
    assert.deepEqual(c.messages(), [{ type: 'message', channel: 'user.42.inbox', data: 'mail' }]);
    c.close();
  });

  test('a token in the URL subscribes its channels before the handshake; a bad one is a 401 instead of the 101', async () => {
    const c = await openWs(`${node.url}/ws?token=${await token(['t1', 't2'])}`);
    await publish(node.url, { channel: 't2', data: 'x' });
    await c.waitFrames(() => c.messages().length === 1);
    c.close();
    await assert.rejects(openWs(`${node.url}/ws?token=garbage`), { status: 401 });
    await assert.rejects(openWs(`${node.url}/ws?token=${await token(['t1'])}&channel=t3`), { status: 403 });
  });

  test('sealed keys: frames name the channel by its key, never by its real name', async () => {
    const key = sealChannel('secret.room', { secret: TEST_SECRET });
    const c = await openWs(`${node.url}/ws`);
    assert.deepEqual((await c.request('subscribe', { key })).result, { channel: key });
    await publish(node.url, { channel: 'secret.room', data: 'psst' });
    await c.waitFrames(() => c.messages().length === 1);
    assert.deepEqual(c.messages(), [{ type: 'message', channel: key, data: 'psst' }]);
    assert.ok(!JSON.stringify(c.frames).includes('secret.room'));
    assert.equal((await c.request('subscribe', { key: key.slice(0, -2) + 'AA' })).error?.code, 'unauthorized');
    assert.equal((await c.request('unsubscribe', { key })).type, 'reply');
    assert.equal(node.server.node.hub.memberCount('secret.room'), 0);
    c.close();
  });

  test('publish only where the grant gives the publish right', async () => {
    const c = await openWs(`${node.url}/ws?token=${await token(['room', 'lobby'], { publish: ['room'] })}`);
    const ok = await c.request('publish', { channel: 'room', data: { text: 'hi' } });
    assert.equal(ok.type, 'reply');
    await c.waitFrames(() => c.messages().length === 1);
    assert.deepEqual(c.messages()[0]?.data, { text: 'hi' }); // a JSON value arrives as that value
    assert.equal((await c.request('publish', { channel: 'lobby', data: 'no' })).error?.code, 'forbidden');
    assert.equal((await c.request('publish', { channel: 'elsewhere', data: 'no' })).error?.code, 'forbidden');
    c.close();
  });

  test('refresh: same subject only; channels the new token no longer grants are dropped and named', async () => {
    const c = await openWs(`${node.url}/ws`);
    await c.request('connect', { token: await token(['r1', 'r2'], { subject: 'u' }) });
    await c.request('subscribe', { channel: 'r1' });
    await c.request('subscribe', { channel: 'r2' });
    assert.equal((await c.request('refresh', { token: await token(['r1'], { subject: 'v' }) })).error?.code, 'forbidden');
    const refreshed = await c.request('refresh', { token: await token(['r1'], { subject: 'u', ttlSeconds: 7200 }) });
    assert.equal(refreshed.type, 'reply');
    assert.ok(c.frames.some((f) => f.type === 'unsubscribed' && f.channel === 'r2' && f.reason === 'forbidden'));
    await publish(node.url, { channels: ['r1', 'r2'], data: 'after' });
    await c.waitFrames(() => c.messages().length === 1);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(c.messages().map((m) => m.channel), ['r1']);
    c.close();
  });

  test('an expiring token closes the connection with 3003 expired; a refresh in time keeps it open', async () => {
    // The expiry is the node's ticker's: a node of its own on a ManualClock, so the tokens expire when the test moves
    // time. The tokens are valid in real time when they are verified (connect, refresh). No heartbeat within the
    // minutes moved at once: pings due together would leave no time for the client's pongs.
    const clock = new ManualClock(Date.now());
    const own = await startServer({ dev: false, heartbeatSeconds: 3600 }, { clock });
    try {
      const short = await openWs(`${own.url}/ws`);
      await short.request('connect', { token: await token(['e'], { ttlSeconds: 60 }) });
      await short.request('subscribe', { channel: 'e' });
      const kept = await openWs(`${own.url}/ws`);
      await kept.request('connect', { token: await token(['e'], { ttlSeconds: 60 }) });
      await kept.request('subscribe', { channel: 'e' });
      assert.equal((await kept.request('refresh', { token: await token(['e'], { ttlSeconds: 3600 }) })).type, 'reply');
      // One tick before the expiry (exp is in whole seconds, at most 1 s after now + 60 s): both still open.
      clock.advance(58_000);
      await kept.request('ping');
      assert.equal(short.ws.readyState, short.ws.OPEN, 'not closed before its expiry');
      clock.advance(3000);
      const closed = await short.closed;
      assert.deepEqual(closed, { code: 3003, reason: 'expired' });
      clock.advance(60_000);
      await kept.request('ping');
      assert.equal(kept.ws.readyState, kept.ws.OPEN);
      await publish(own.url, { channel: 'e', data: 'still here' });
      await kept.waitFrames(() => kept.messages().length === 1);
      kept.close();
      await kept.closed;
      await eventually(() => own.server.node.sessionCount() === 0, 2000, 'sessions back to baseline');
    } finally {
      await own.close();
    }
  });
});
