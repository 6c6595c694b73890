/** Resume on /sub (since=) and /sse (Last-Event-ID): exactly the missed messages, in order, or an explicit reload. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { EventSource } from 'eventsource';
import { eventually, openStream, publish, startServer, type LineStream, type TestServer } from './helpers/server.js';
import { startProxy } from './helpers/proxy.js';

type Line = [string, string, string, string?];
const parse = (lines: readonly string[]): Line[] => lines.filter((l) => l !== '').map((l) => JSON.parse(l) as Line);

let seq = 0;
const fresh = (): string => `r${process.pid}.${++seq}`;

async function pub(url: string, channel: string, data: string): Promise<string> {
  const res = await publish(url, { channel, data });
  assert.equal(res.status, 200);
  return (res.body as { id: string }).id;
}

/** Wait until a stream has `n` non-empty lines and return them parsed. */
async function linesOf(stream: LineStream, n: number): Promise<Line[]> {
  await eventually(() => stream.lines.filter((l) => l !== '').length >= n, 5000, `${n} lines`);
  return parse(stream.lines);
}

describe('resume on /sub', () => {
  let node: TestServer;
  before(async () => {
    node = await startServer({ historySize: 5 });
  });
  after(() => node.close());

  test('since= replays what was missed, then continues live, with no duplicate', async () => {
    const c = fresh();
    const ids: string[] = [];
    for (let i = 1; i <= 4; i++) ids.push(await pub(node.url, c, `m${i}`));
    assert.match(ids[0]!, /^1-[0-9a-z]+$/);
    const s = await openStream(`${node.url}/sub?channel=${c}&since=${ids[1]}`);
    assert.equal(s.status, 200);
    const id5 = await pub(node.url, c, 'm5');
    assert.deepEqual(await linesOf(s, 3), [
      ['message', c, 'm3', ids[2]],
      ['message', c, 'm4', ids[3]],
      ['message', c, 'm5', id5],
    ]);
    s.close();
  });

  test('since= at the newest message replays nothing', async () => {
    const c = fresh();
    const id = await pub(node.url, c, 'm1');
    const s = await openStream(`${node.url}/sub?channel=${c}&since=${id}`);
    const id2 = await pub(node.url, c, 'm2');
    assert.deepEqual(await linesOf(s, 1), [['message', c, 'm2', id2]]);
    s.close();
  });

  test('an empty since= announces the position, and resuming from it loses nothing', async () => {
    const c = fresh();
    const s = await openStream(`${node.url}/sub?channel=${c}&since=`);
    const [position] = await linesOf(s, 1);
    assert.equal(position?.[0], 'position');
    assert.equal(position?.[1], c);
    assert.match(position?.[2] ?? '', /^0-S[0-9A-Za-z]+$/, 'a read stamp: the channel has no history yet');
    s.close();
    const id = await pub(node.url, c, 'while away');
    const again = await openStream(`${node.url}/sub?channel=${c}&since=${position?.[2]}`);
    assert.deepEqual(await linesOf(again, 1), [['message', c, 'while away', id]]);
    again.close();
  });

  test('since= older than the kept history gets a reload line, then live messages', async () => {
    const c = fresh();
    const ids: string[] = [];
    for (let i = 1; i <= 8; i++) ids.push(await pub(node.url, c, `m${i}`)); // history keeps 5
    const s = await openStream(`${node.url}/sub?channel=${c}&since=${ids[0]}`);
    const id9 = await pub(node.url, c, 'm9');
    assert.deepEqual(await linesOf(s, 2), [
      ['reload', c, 'expired', ids[7]],
      ['message', c, 'm9', id9],
    ]);
    s.close();
    const metrics = await (await fetch(`${node.url}/metrics`)).text();
    assert.match(metrics, /herald_reloads_total\{reason="expired"\} [1-9]/);
  });

  test("since= of another epoch gets a reload line, then the current epoch's messages from its start", async () => {
    const c = fresh();
    const id = await pub(node.url, c, 'm1');
    const id2 = await pub(node.url, c, 'm2');
    const s = await openStream(`${node.url}/sub?channel=${c}&since=1-otherepoch`);
    const epoch = id.split('-')[1];
    assert.deepEqual(await linesOf(s, 3), [
      ['reload', c, 'epoch', `0-${epoch}`],
      ['message', c, 'm1', id],
      ['message', c, 'm2', id2],
    ]);
    s.close();
  });

  test('several channels resume from one cursor, each from its own position', async () => {
    const a = fresh();
    const b = fresh();
    const a1 = await pub(node.url, a, 'a1');
    const b1 = await pub(node.url, b, 'b1');
    const a2 = await pub(node.url, a, 'a2');
    const b2 = await pub(node.url, b, 'b2');
    const b3 = await pub(node.url, b, 'b3');
    const s = await openStream(`${node.url}/sub?channel=${a}&channel=${b}&since=${a1},${b1}`);
    const lines = await linesOf(s, 3);
    assert.deepEqual(lines.filter((l) => l[1] === a), [['message', a, 'a2', a2]]);
    assert.deepEqual(lines.filter((l) => l[1] === b), [
      ['message', b, 'b2', b2],
      ['message', b, 'b3', b3],
    ]);
    s.close();
  });

  test('a malformed cursor, or one for another number of channels, is refused with 400', async () => {
    const c = fresh();
    for (const since of ['nonsense', '1-abc,2-abc', '-5-abc']) {
      const s = await openStream(`${node.url}/sub?channel=${c}&since=${encodeURIComponent(since)}`);
      assert.equal(s.status, 400, since);
      await s.ended;
      assert.equal((JSON.parse(s.lines.join('')) as { error: { code: string } }).error.code, 'bad_request');
    }
  });
});

describe('resume under concurrent publishing', () => {
  let node: TestServer;
  before(async () => {
    node = await startServer({ historySize: 1000 });
  });
  after(() => node.close());

  test('exactly once, in order, while a publisher keeps going and the client reconnects again and again', async () => {
    const c = fresh();
    const total = 400;
    const got: string[] = [];
    let cursor = '';
    const publisher = (async () => {
      for (let i = 0; i < total; i++) {
        await pub(node.url, c, String(i));
        if (i % 7 === 0) await new Promise((r) => setTimeout(r, 1));
      }
    })();
    let reconnects = 0;
    while (got.length < total) {
      const s = await openStream(`${node.url}/sub?channel=${c}&since=${cursor}`);
      assert.equal(s.status, 200);
      const stopAt = Math.min(total, got.length + 20 + Math.floor(Math.random() * 40));
      const deadline = Date.now() + 5000;
      let seen = 0;
      while (got.length < stopAt && Date.now() < deadline) {
        const lines = parse(s.lines);
        for (; seen < lines.length; seen++) {
          const l = lines[seen]!;
          if (l[0] === 'message') {
            got.push(l[2]);
            cursor = l[3]!;
          } else if (l[0] === 'position') cursor = l[2];
          else assert.fail(`unexpected line ${JSON.stringify(l)}`);
        }
        await new Promise((r) => setTimeout(r, 2));
      }
      s.close();
      reconnects++;
      assert.ok(reconnects < 200, 'makes progress');
    }
    await publisher;
    assert.deepEqual(got, Array.from({ length: total }, (_, i) => String(i)));
    assert.ok(reconnects >= 5, `resumed ${reconnects} times`);
  });
});

describe('history off', () => {
  let node: TestServer;
  before(async () => {
    node = await startServer({ historySize: 0 });
  });
  after(() => node.close());

  test('messages have no id, and a client asking to resume is told to reload', async () => {
    const c = fresh();
    const res = await publish(node.url, { channel: c, data: 'x' });
    assert.deepEqual(res.body, { id: null });
    const s = await openStream(`${node.url}/sub?channel=${c}&since=1-abc`);
    assert.deepEqual(await linesOf(s, 1), [['reload', c, 'no_history', '']]);
    await pub(node.url, c, 'live');
    assert.deepEqual((await linesOf(s, 2))[1], ['message', c, 'live']);
    s.close();
  });
});

interface Received {
  type: string;
  data: Line;
  lastEventId: string;
}

function listen(es: EventSource, into: Received[]): void {
  for (const type of ['message', 'reload', 'position']) {
    es.addEventListener(type, (e: MessageEvent) => {
      into.push({ type, data: JSON.parse(e.data as string) as Line, lastEventId: e.lastEventId });
    });
  }
}

describe('resume on /sse with the eventsource package', () => {
  let node: TestServer;
  before(async () => {
    node = await startServer({ historySize: 50 });
  });
  after(() => node.close());

  test('a dropped EventSource resumes from Last-Event-ID with nothing lost or repeated', async () => {
    const proxy = await startProxy(node.url);
    const c = fresh();
    const got: Received[] = [];
    const es = new EventSource(`${proxy.url}/sse?channel=${c}`);
    listen(es, got);
    try {
      await eventually(() => got.some((r) => r.type === 'position'), 5000, 'the first position');
      await pub(node.url, c, 'before');
      await eventually(() => got.some((r) => r.data[2] === 'before'), 5000, 'first message');
      proxy.cut();
      const during: string[] = [];
      for (let i = 0; i < 5; i++) during.push(await pub(node.url, c, `during${i}`));
      await eventually(() => got.filter((r) => r.type === 'message').length === 6, 8000, 'the missed messages');
      await pub(node.url, c, 'after');
      await eventually(() => got.filter((r) => r.type === 'message').length === 7, 5000, 'the live message');
      const messages = got.filter((r) => r.type === 'message');
      assert.deepEqual(messages.map((r) => r.data[2]), ['before', 'during0', 'during1', 'during2', 'during3', 'during4', 'after']);
      assert.deepEqual(messages.slice(1, 6).map((r) => r.lastEventId), during);
    } finally {
      es.close();
      await proxy.close();
    }
  });

  test('several channels on one EventSource resume from its one Last-Event-ID', async () => {
    const proxy = await startProxy(node.url);
    const a = fresh();
    const b = fresh();
    const got: Received[] = [];
    const es = new EventSource(`${proxy.url}/sse?channel=${a}&channel=${b}`);
    listen(es, got);
    try {
      await eventually(() => got.filter((r) => r.type === 'position').length === 2, 5000, 'both positions');
      await pub(node.url, a, 'a-before');
      await eventually(() => got.some((r) => r.data[2] === 'a-before'), 5000, 'first message');
      assert.match(got.at(-1)!.lastEventId, /^1-[0-9a-z]+,0-S[0-9A-Za-z]+$/, 'the cursor lists both channels');
      proxy.cut();
      await pub(node.url, b, 'b-during');
      await pub(node.url, a, 'a-during');
      await pub(node.url, b, 'b-during2');
      await eventually(() => got.filter((r) => r.type === 'message').length === 4, 8000, 'the missed messages');
      await pub(node.url, a, 'a-after');
      await eventually(() => got.filter((r) => r.type === 'message').length === 5, 5000, 'the live message');
      const of = (ch: string) => got.filter((r) => r.type === 'message' && r.data[1] === ch).map((r) => r.data[2]);
      assert.deepEqual(of(a), ['a-before', 'a-during', 'a-after']);
      assert.deepEqual(of(b), ['b-during', 'b-during2']);
    } finally {
      es.close();
      await proxy.close();
    }
  });

  test('lastEventId in the query resumes a first connection', async () => {
    const c = fresh();
    const id1 = await pub(node.url, c, 'one');
    const id2 = await pub(node.url, c, 'two');
    const got: Received[] = [];
    const es = new EventSource(`${node.url}/sse?channel=${c}&lastEventId=${id1}`);
    listen(es, got);
    try {
      await eventually(() => got.length >= 1, 5000, 'the replay');
      assert.deepEqual(got[0], { type: 'message', data: ['message', c, 'two', id2], lastEventId: id2 });
    } finally {
      es.close();
    }
  });
});

describe('reload on /sse when history expired', () => {
  let node: TestServer;
  before(async () => {
    node = await startServer({ historySize: 3 });
  });
  after(() => node.close());

  test('a resume beyond the kept history gets a reload event carrying the new position', async () => {
    const c = fresh();
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push(await pub(node.url, c, `m${i}`));
    const got: Received[] = [];
    const es = new EventSource(`${node.url}/sse?channel=${c}&lastEventId=${ids[0]}`);
    listen(es, got);
    try {
      await eventually(() => got.length >= 1, 5000, 'the reload');
      assert.deepEqual(got[0], { type: 'reload', data: ['reload', c, 'expired', ids[5]], lastEventId: ids[5] });
    } finally {
      es.close();
    }
  });
});
