/**
 * JSON data (issue 9 §4, docs/protocol.md "JSON data"): `data` published as a JSON value that is not a string reaches
 * /ws, the SDK (every transport) and the server API's history as that value, while the seed's /sub lines, SSE's data
 * line and /poll keep the text as a string unless the stream asks with `jsonData=1`. On the embedded broker and on a
 * real Redis: live, replayed from history on resume, a plain Redis PUBLISH (always text), a backend's FCALL with the
 * json flag (checked), and the envelope hole: a no-history publish whose data starts with "\0herald\0" arrives as it
 * was published.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { EventSource } from 'eventsource';
import WebSocket from 'ws';
import { HeraldClient, type Message, type TransportName } from '@herald/client';
import { ENVELOPE_PREFIX, envelope, historyKeys, plainPayload, toPublication } from '../src/broker/redis-history.js';
import { openWs } from './helpers/ws.js';
import { redisCli, startNodeOnRedis, startRedis, type RedisProcess } from './helpers/redis.js';
import { eventually, openStream, publish, startServer, TEST_API_KEY, type TestServer } from './helpers/server.js';

const OBJECT = { a: [1, 'line\nbreak', { b: null }], ok: true };
const OBJECT_TEXT = JSON.stringify(OBJECT);
/** A string that looks like JSON: published as a string, it stays one everywhere. */
const LOOKS_JSON = '{"not":"a value"}';
/** A string that starts with the Redis envelope's marker and a well-formed id: the hole on a no-history publish. */
const MARKED = `${ENVELOPE_PREFIX}1-abc\u0000tail`;

const cleanup: (() => unknown)[] = [];
after(async () => {
  for (const f of cleanup.reverse()) await f();
});

async function rawPublish(url: string, channel: string, body: string, contentType: string): Promise<unknown> {
  const res = await fetch(`${url}/api/publish?channel=${encodeURIComponent(channel)}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${TEST_API_KEY}`, 'Content-Type': contentType },
    body,
  });
  assert.equal(res.status, 200);
  return res.json();
}

const dataOfLine = (line: string): unknown => (JSON.parse(line) as unknown[])[2];
const sseData = (lines: readonly string[]): unknown[] =>
  lines.filter((l) => l.startsWith('data: ["message"')).map((l) => dataOfLine(l.slice('data: '.length)));

function sdk(url: string, channel: string, transport: TransportName, since?: string): { client: HeraldClient; got: Message[] } {
  const client = new HeraldClient(url, {
    channels: [channel],
    transports: [transport],
    minReconnectDelayMs: 20,
    maxReconnectDelayMs: 200,
    platform: { EventSource, WebSocket },
    ...(since !== undefined ? { since: { [channel]: since } } : {}),
  });
  const got: Message[] = [];
  client.on('message', (m) => got.push(m));
  cleanup.push(() => client.disconnect());
  client.connect();
  return { client, got };
}

let redis: RedisProcess | undefined;
before(async () => {
  redis = await startRedis();
  cleanup.push(() => redis?.stop());
});

for (const kind of ['memory', 'redis'] as const) {
  describe(`JSON data on the ${kind} broker`, () => {
    let node: TestServer;
    before(async () => {
      // `h:` keeps history (resume); every other channel none, as the seed's.
      const overrides = { namespaces: { h: { historySize: 10, historyTtlSeconds: 60 } } };
      node = kind === 'memory' ? await startServer(overrides) : await startNodeOnRedis(`redis://127.0.0.1:${redis!.port}`, overrides);
      cleanup.push(() => node.close());
    });

    for (const channel of ['live', 'h:live']) {
      test(`${channel}: a JSON value is a value on /ws and with jsonData=1; /sub, SSE and /poll keep the text`, async () => {
        const url = node.url;
        const seed = await openStream(`${url}/sub?channel=${channel}`);
        const seedJson = await openStream(`${url}/sub?channel=${channel}&jsonData=1`);
        const sse = await openStream(`${url}/sse?channel=${channel}`);
        const sseJson = await openStream(`${url}/sse?channel=${channel}&jsonData=true`);
        const ws = await openWs(`${url}/ws`);
        cleanup.push(() => [seed, seedJson, sse, sseJson].forEach((s) => s.close()), () => ws.close());
        assert.equal((await ws.request('subscribe', { channel })).type, 'reply');

        assert.equal((await publish(url, { channel, data: OBJECT })).status, 200);
        assert.equal((await publish(url, { channel, data: LOOKS_JSON })).status, 200);
        await rawPublish(url, channel, '[1,2]', 'application/json');
        await rawPublish(url, channel, '"a JSON string"', 'application/json');
        await rawPublish(url, channel, '{"raw":"text"}', 'text/plain');
        // From a /ws client: a JSON value and a string.
        assert.equal((await ws.request('publish', { channel, data: { from: 'ws' } })).type, 'reply');
        assert.equal((await ws.request('publish', { channel, data: 'plain' })).type, 'reply');

        const texts = [OBJECT_TEXT, LOOKS_JSON, '[1,2]', 'a JSON string', '{"raw":"text"}', '{"from":"ws"}', 'plain'];
        const values = [OBJECT, LOOKS_JSON, [1, 2], 'a JSON string', '{"raw":"text"}', { from: 'ws' }, 'plain'];
        await ws.waitFrames(() => ws.messages().length === 7, 5000, '7 messages on /ws');
        assert.deepEqual(ws.messages().map((f) => f.data as unknown), values);
        // The seed's lines, byte for byte (no since: no ids).
        const lines = await seed.waitLines(7);
        assert.deepEqual(lines, texts.map((t) => JSON.stringify(['message', channel, t])));
        assert.deepEqual((await seedJson.waitLines(7)).map(dataOfLine), values);
        await eventually(() => sseData(sse.lines).length === 7 && sseData(sseJson.lines).length === 7, 5000, 'SSE events');
        assert.deepEqual(sseData(sse.lines), texts);
        assert.deepEqual(sseData(sseJson.lines), values);
        // Every SSE data line is one line: the JSON value's newline is escaped inside its string.
        assert.ok(sseJson.lines.some((l) => l.includes('"line\\nbreak"')));
      });
    }

    test('resume from history: replayed JSON is a value on /ws, with jsonData=1 on /poll, in the server API; text on plain /poll', async () => {
      const url = node.url;
      const channel = 'h:resume';
      const first = (await publish(url, { channel, data: 'first' })).body as { id: string };
      await publish(url, { channel, data: OBJECT });
      await publish(url, { channel, data: LOOKS_JSON });
      const ws = await openWs(`${url}/ws`);
      cleanup.push(() => ws.close());
      await ws.request('subscribe', { channel, since: first.id });
      await ws.waitFrames(() => ws.messages().length === 2, 5000, 'replayed messages');
      assert.deepEqual(ws.messages().map((f) => f.data as unknown), [OBJECT, LOOKS_JSON]);

      const poll = async (extra: string): Promise<unknown[]> => {
        const res = await fetch(`${url}/poll?channel=${channel}&since=${encodeURIComponent(first.id)}${extra}`);
        const body = (await res.json()) as { messages: unknown[][] };
        return body.messages.filter((m) => m[0] === 'message').map((m) => m[2]);
      };
      assert.deepEqual(await poll('&jsonData=1'), [OBJECT, LOOKS_JSON]);
      assert.deepEqual(await poll(''), [OBJECT_TEXT, LOOKS_JSON]);

      const res = await fetch(`${url}/api/history`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${TEST_API_KEY}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ channel }),
      });
      const history = (await res.json()) as { publications: { data: unknown }[] };
      assert.deepEqual(history.publications.map((p) => p.data), ['first', OBJECT, LOOKS_JSON]);
    });

    for (const transport of ['websocket', 'sse', 'poll'] as const) {
      test(`the SDK over ${transport}: data is the published value, live and on resume`, async () => {
        const url = node.url;
        const channel = `h:sdk-${transport}`;
        const first = (await publish(url, { channel, data: 'before' })).body as { id: string };
        await publish(url, { channel, data: [1, { two: 2 }] });
        const { client, got } = sdk(url, channel, transport, first.id);
        await eventually(() => client.state === 'connected' && got.length === 1, 10_000, 'connected and resumed');
        await publish(url, { channel, data: OBJECT });
        await publish(url, { channel, data: LOOKS_JSON });
        await publish(url, { channel, data: 42 });
        await eventually(() => got.length === 4, 10_000, 'live messages');
        assert.deepEqual(got.map((m) => m.data), [[1, { two: 2 }], OBJECT, LOOKS_JSON, 42]);
      });
    }

    test('a no-history publish whose data starts with the envelope marker arrives as published', async () => {
      const url = node.url;
      const seed = await openStream(`${url}/sub?channel=marked`);
      const ws = await openWs(`${url}/ws`);
      cleanup.push(() => seed.close(), () => ws.close());
      await ws.request('subscribe', { channel: 'marked' });
      assert.deepEqual((await publish(url, { channel: 'marked', data: MARKED })).body, { id: null });
      await rawPublish(url, 'marked', MARKED, 'text/plain');
      await ws.waitFrames(() => ws.messages().length === 2, 5000, 'the marked messages');
      assert.deepEqual(ws.messages().map((f) => [f.data, 'id' in f]), [[MARKED, false], [MARKED, false]]);
      assert.deepEqual(await seed.waitLines(2), [JSON.stringify(['message', 'marked', MARKED]), JSON.stringify(['message', 'marked', MARKED])]);
    });
  });
}

describe('JSON data and plain Redis clients', () => {
  let node: TestServer;
  before(async () => {
    node = await startNodeOnRedis(`redis://127.0.0.1:${redis!.port}`);
    cleanup.push(() => node.close());
  });

  test('a plain Redis PUBLISH stays text, even when it is JSON', async () => {
    const ws = await openWs(`${node.url}/ws?channel=plain`);
    cleanup.push(() => ws.close());
    await eventually(() => redisCli(redis!.port, 'PUBSUB', 'NUMSUB', 'plain').includes('1'), 5000, 'subscribed');
    redisCli(redis!.port, 'PUBLISH', 'plain', '{"a":1}');
    await ws.waitFrames(() => ws.messages().length === 1);
    assert.equal(ws.messages()[0]?.data, '{"a":1}');
  });

  test("a backend's FCALL herald_publish with the json flag: valid JSON is a value, invalid stays text", async () => {
    const ws = await openWs(`${node.url}/ws?channel=backend`);
    cleanup.push(() => ws.close());
    await eventually(() => redisCli(redis!.port, 'PUBSUB', 'NUMSUB', 'backend').includes('1'), 5000, 'subscribed');
    const [stream, meta] = historyKeys('backend', false);
    const fcall = (data: string, size: string): string =>
      redisCli(redis!.port, 'FCALL', 'herald_publish', '2', stream, meta, 'backend', data, size, '60000', '3600000', 'PUBLISH', '0', 'json');
    fcall('{"x":\r\n 1}', '10');
    fcall('{broken', '10');
    fcall('[true]', '0');
    await ws.waitFrames(() => ws.messages().length === 3);
    assert.deepEqual(ws.messages().map((f) => f.data as unknown), [{ x: 1 }, '{broken', [true]]);
    assert.equal(typeof ws.messages()[0]?.id, 'string');
  });
});

test('the envelope: ids and the JSON flag round-trip; what is not an envelope is verbatim text', () => {
  const p = toPublication('c', envelope('3-k1', true, '{"a":1}'), 5);
  assert.deepEqual({ data: p.data, json: p.json, id: p.id }, { data: '{"a":1}', json: true, id: '3-k1' });
  assert.deepEqual(toPublication('c', envelope('3-k1', false, 'x'), 5), { channel: 'c', data: 'x', id: '3-k1', position: { offset: 3, epoch: 'k1' }, ts: 5 });
  assert.deepEqual(toPublication('c', envelope('', true, '[1]'), 5), { channel: 'c', data: '[1]', json: true, ts: 5 });
  assert.deepEqual(toPublication('c', plainPayload(MARKED, false), 5), { channel: 'c', data: MARKED, ts: 5 });
  assert.equal(plainPayload('hello', false), 'hello');
  // Old envelopes (no flag) and garbage after the marker.
  assert.equal(toPublication('c', `${ENVELOPE_PREFIX}7-e\u0000old`, 1).data, 'old');
  assert.equal(toPublication('c', `${ENVELOPE_PREFIX}not an id\u0000x`, 1).data, `${ENVELOPE_PREFIX}not an id\u0000x`);
  // Flagged but not JSON: text.
  assert.deepEqual(toPublication('c', envelope('', true, '{nope'), 1), { channel: 'c', data: '{nope', ts: 1 });
});
