/**
 * Token refresh end to end, on a node that requires credentials: short-lived JWTs from `signToken`. Over SSE the
 * node ends the stream as `expired`, and the SDK fetches a new token through the callback and resumes without loss;
 * over WebSocket the SDK replaces the token in place before it expires and never reconnects.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventSource } from 'eventsource';
import WebSocket from 'ws';
import { HeraldClient, type Message, type TransportName } from '@herald/client';
import { signToken } from '../../src/auth/jwt.js';
import { eventually, publish, startServer, TEST_SECRET } from '../helpers/server.js';

/** Long enough to exceed the SDK's 5 s refresh margin, short enough to expire within the test. */
const TTL_SECONDS = 6;

test('short-lived tokens: SSE reconnects with a fresh one and resumes; WebSocket refreshes in place', async () => {
  const node = await startServer({ dev: false, historySize: 1000 });
  const clients: HeraldClient[] = [];
  try {
    const channel = 'tokens.news';
    const issued: Record<TransportName, number> = { sse: 0, websocket: 0, poll: 0 };
    const run = (transport: TransportName): { client: HeraldClient; got: Message[]; connects: number[] } => {
      const client = new HeraldClient(node.url, {
        transports: [transport],
        minReconnectDelayMs: 20,
        maxReconnectDelayMs: 200,
        getToken: () => {
          issued[transport]++;
          return signToken({ secret: TEST_SECRET, channels: [channel], ttlSeconds: TTL_SECONDS });
        },
        platform: { EventSource, WebSocket },
      });
      const out = { client, got: [] as Message[], connects: [] as number[] };
      client.on('message', (m) => out.got.push(m));
      client.on('connected', () => out.connects.push(Date.now()));
      clients.push(client);
      client.connect();
      return out;
    };
    const sse = run('sse');
    const ws = run('websocket');
    await eventually(() => sse.client.state === 'connected' && ws.client.state === 'connected', 5000, 'both connected');

    const sent: string[] = [];
    const deadline = Date.now() + (TTL_SECONDS + 1.5) * 1000;
    for (let i = 0; Date.now() < deadline; i++) {
      const res = await publish(node.url, { channel, data: `m${i}` });
      assert.equal(res.status, 200);
      sent.push(`m${i}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await eventually(() => sse.got.length >= sent.length && ws.got.length >= sent.length, 5000, 'every message');

    assert.deepEqual(sse.got.map((m) => m.data), sent, 'SSE: every message once, in order, across the expiry');
    assert.deepEqual(ws.got.map((m) => m.data), sent, 'WebSocket: every message once, in order');
    assert.ok(sse.connects.length >= 2, 'SSE reconnected after the node ended the stream as expired');
    assert.ok(issued.sse >= 2, 'SSE asked for a fresh token');
    assert.equal(ws.connects.length, 1, 'WebSocket never reconnected');
    assert.ok(issued.websocket >= 2, 'WebSocket refreshed its token in place');
  } finally {
    for (const c of clients) c.disconnect();
    await node.close();
  }
});
