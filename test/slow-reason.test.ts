// Issue 13 item 5: a slow client gets its documented reason before the cut. A client stops reading while messages
// flow; once its queue passes maxQueueBytes the node ends the stream as `slow`: whole messages, then the disconnect
// line (/sub), the disconnect event (/sse) or close 3002 (/ws) as the last thing on the wire, then the close. The
// client reconnects with its last id and gets the rest: every published message exactly once, in order.
// A client that never reads again is cut when closeGraceMs has passed. Figures go to docs/reliability.md.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { Logger, LogFields } from '../src/util/log.js';
import { guarded } from './helpers/guard.js';
import { eventually, openStream, publish, startServer, type TestServer } from './helpers/server.js';
import { openWs } from './helpers/ws.js';

const QUEUE = 256 * 1024;
const GRACE_MS = 3000;
const PAYLOAD = 'p'.repeat(64 * 1024);

const slowLogs: LogFields[] = [];
const logger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  error: () => undefined,
  warn: (msg, fields) => void (/queue/.test(msg) && fields && slowLogs.push(fields)),
};

let node: TestServer;
before(async () => {
  node = await startServer(
    {
      historySize: 1000,
      historyTtlSeconds: 120,
      maxQueueBytes: QUEUE,
      closeGraceMs: GRACE_MS,
      maxBodyBytes: 1 << 20,
      // No heartbeat during the test: a paused client seen at a heartbeat is a dead peer (hard cut), not slow.
      heartbeatSeconds: 3600,
    },
    { logger },
  );
});
after(() => node.close());

const slowCount = (): number => node.server.node.metrics.disconnects.get({ reason: 'slow' });

/** What one transport's slow client saw: message [data, id] pairs in order, and what came last. */
interface Observed {
  messages: [string, string][];
  last: unknown;
  /** The stream or socket ended cleanly (complete chunked body, WebSocket close handshake). */
  clean: boolean;
  /** Bytes received after the client started reading again (what was buffered for it when it was cut). */
  bytesAfterResume: number;
  /** Milliseconds from reading again to the end of the stream. */
  closeMs: number;
}

/** A stopped reader on one transport. */
interface SlowClient {
  pause(): void;
  resume(): void;
  done: Promise<Observed>;
}

/** /sub or /sse over node's HTTP client: the response is paused, so the kernel buffers fill, then the node's queue. */
function httpClient(url: string, parse: (lines: string[]) => { messages: [string, string][]; last: unknown }): Promise<SlowClient> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      assert.equal(res.statusCode, 200);
      // The server closes a stream's socket when it ends: no client pool may reuse it.
      assert.equal(res.headers.connection, 'close');
      let body = '';
      let resumedAt = 0;
      let bytesAfterResume = 0;
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
        if (resumedAt) bytesAfterResume += Buffer.byteLength(d);
      });
      const done = new Promise<Observed>((ok) => {
        res.on('close', () => {
          const closeMs = Date.now() - resumedAt;
          let seen: { messages: [string, string][]; last: unknown };
          try {
            seen = parse(body.split('\n'));
          } catch {
            seen = { messages: [], last: `unparseable end: ${JSON.stringify(body.slice(-200))}` };
          }
          ok({ ...seen, clean: res.complete, bytesAfterResume, closeMs });
        });
      });
      resolve({
        pause: () => res.pause(),
        resume: () => {
          resumedAt = Date.now();
          res.resume();
        },
        done,
      });
    });
    req.on('error', reject);
  });
}

function parseSub(lines: string[]): { messages: [string, string][]; last: unknown } {
  const arrays = lines.filter((l) => l !== '').map((l) => JSON.parse(l) as string[]);
  const messages = arrays.filter((a) => a[0] === 'message').map((a) => [a[2]!, a[3]!] as [string, string]);
  return { messages, last: arrays[arrays.length - 1] };
}

function parseSse(lines: string[]): { messages: [string, string][]; last: unknown } {
  const events: { event: string; data: string[] }[] = [];
  let event = 'message';
  for (const l of lines) {
    if (l.startsWith('event: ')) event = l.slice(7);
    else if (l.startsWith('data: ')) events.push({ event, data: JSON.parse(l.slice(6)) as string[] });
    else if (l === '') event = 'message';
  }
  const messages = events.filter((e) => e.event === 'message').map((e) => [e.data[2]!, e.data[3]!] as [string, string]);
  return { messages, last: events[events.length - 1] };
}

/** Publish on `channel` until the slow client is cut; returns [data, id] of every message published. */
async function floodUntilSlow(channel: string): Promise<[string, string][]> {
  const before = slowCount();
  const sent: [string, string][] = [];
  for (let i = 0; slowCount() === before; i++) {
    assert.ok(i < 400, 'never cut as slow');
    const data = `${i}:${PAYLOAD}`;
    const res = await publish(node.url, { channel, data });
    assert.equal(res.status, 200);
    sent.push([data, (res.body as { id: string }).id]);
  }
  return sent;
}

async function publishMore(channel: string, sent: [string, string][], n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const data = `more-${i}`;
    const res = await publish(node.url, { channel, data });
    assert.equal(res.status, 200);
    sent.push([data, (res.body as { id: string }).id]);
  }
}

/** Every published message exactly once, in order, across the cut connection and the one that resumed. */
function assertExactlyOnce(got: [string, string][], sent: [string, string][]): void {
  assert.equal(got.length, sent.length, `received ${got.length} of ${sent.length}`);
  got.forEach(([data, id], i) => {
    assert.equal(id, sent[i]![1], `message ${i}: id`);
    assert.ok(data === sent[i]![0], `message ${i}: whole and in order`);
  });
}

const figures: string[] = [];
after(() => {
  if (figures.length > 0) console.log(`slow-client figures (maxQueueBytes ${QUEUE}, closeGraceMs ${GRACE_MS}):\n${figures.join('\n')}`);
});

function record(transport: string, o: Observed): void {
  const queued = slowLogs[slowLogs.length - 1]?.['queuedBytes'];
  figures.push(
    `  ${transport}: queued at the cut ${String(queued)} B, received after reading again ${o.bytesAfterResume} B, ` +
      `closed ${o.closeMs} ms after reading again`,
  );
}

const CONTROL = { url: '', channel: 'control' };

describe('a slow client gets its reason as the last thing on the wire', () => {
  for (const [path, cursorParam, parse, disconnect] of [
    ['sub', 'since', parseSub, ['disconnect', 'slow', 3002, true]],
    ['sse', 'lastEventId', parseSse, { event: 'disconnect', data: ['disconnect', 'slow', 3002, true] }],
  ] as const) {
    test(`/${path}: whole messages, then the slow disconnect, then the end; resuming gets the rest exactly once`, async () => {
      await guarded(node, { ...CONTROL, url: `${node.url}/sub?channel=control` }, async (g) => {
        const channel = `slow-${path}`;
        const first = await publish(node.url, { channel, data: 'start' });
        const sent: [string, string][] = [];
        const startId = (first.body as { id: string }).id;
        const c = await httpClient(`${node.url}/${path}?channel=${channel}&${cursorParam}=${startId}`, parse);
        c.pause();
        sent.push(...(await floodUntilSlow(channel)));
        await g.tick();
        // Its channel is released at once; its socket still counts until it closes.
        assert.equal(node.server.node.sessionCount(), 2);
        await publishMore(channel, sent, 3);
        c.resume();
        const o = await c.done;
        record(`/${path}`, o);
        assert.ok(o.clean, 'the stream ended cleanly (complete chunked body), not cut inside a message');
        assert.deepEqual(o.last, disconnect, 'the slow reason is the last thing on the wire');
        assert.ok(o.closeMs < GRACE_MS, `closed ${o.closeMs} ms after reading again`);
        const lastId = o.messages[o.messages.length - 1]?.[1] ?? startId;
        // Reconnect with the last id: the rest arrives from history, then live.
        const back = await openStream(`${node.url}/${path}?channel=${channel}&${cursorParam}=${lastId}`);
        try {
          await publishMore(channel, sent, 2);
          await eventually(() => parse(back.lines).messages.length === sent.length - o.messages.length, 5000, 'the rest');
          assertExactlyOnce([...o.messages, ...parse(back.lines).messages], sent);
        } finally {
          back.close();
        }
      });
    });
  }

  test('/ws: whole messages, then close 3002; resuming gets the rest exactly once', async () => {
    await guarded(node, { ...CONTROL, url: `${node.url}/sub?channel=control` }, async (g) => {
      const first = await publish(node.url, { channel: 'slow-ws', data: 'start' });
      const startId = (first.body as { id: string }).id;
      const c = await openWs(`${node.url}/ws?channel=slow-ws&since=${startId}`);
      let resumedAt = 0;
      let bytesAfterResume = 0;
      c.ws.on('message', (raw) => {
        if (resumedAt) bytesAfterResume += (raw as Buffer).length;
      });
      c.ws.pause();
      const sent = await floodUntilSlow('slow-ws');
      await g.tick();
      assert.equal(node.server.node.sessionCount(), 2);
      await publishMore('slow-ws', sent, 3);
      resumedAt = Date.now();
      c.ws.resume();
      const closed = await c.closed;
      const o: Observed = {
        messages: c.messages().map((m) => [m.data ?? '', String(m.id ?? '')]),
        last: closed,
        clean: true,
        bytesAfterResume,
        closeMs: Date.now() - resumedAt,
      };
      record('/ws', o);
      assert.deepEqual(closed, { code: 3002, reason: 'slow' }, 'close 3002, not 1006');
      assert.ok(o.closeMs < GRACE_MS, `closed ${o.closeMs} ms after reading again`);
      const lastId = o.messages[o.messages.length - 1]?.[1] ?? startId;
      const back = await openWs(`${node.url}/ws`);
      try {
        assert.equal((await back.request('subscribe', { channel: 'slow-ws', since: lastId })).type, 'reply');
        await publishMore('slow-ws', sent, 2);
        await back.waitFrames(() => back.messages().length === sent.length - o.messages.length, 5000, 'the rest');
        assertExactlyOnce([...o.messages, ...back.messages().map((m) => [m.data ?? '', String(m.id ?? '')] as [string, string])], sent);
      } finally {
        back.close();
        await back.closed;
      }
    });
  });

  test('a client that never reads again is cut once closeGraceMs has passed; it counts until then', async () => {
    await guarded(node, { ...CONTROL, url: `${node.url}/sub?channel=control` }, async () => {
      const c = await httpClient(`${node.url}/sub?channel=slow-never`, parseSub);
      c.pause();
      await floodUntilSlow('slow-never');
      const cutAt = Date.now();
      assert.equal(node.server.node.sessionCount(), 2, 'still counted while its socket is open');
      await eventually(() => node.server.node.sessionCount() === 1, GRACE_MS + 3000, 'the socket destroyed');
      const ms = Date.now() - cutAt;
      figures.push(`  never reads again: socket destroyed ${ms} ms after the cut`);
      assert.ok(ms >= GRACE_MS - 50 && ms <= GRACE_MS + 1500, `destroyed ${ms} ms after the cut`);
      c.resume();
      await c.done;
    });
  });
});
