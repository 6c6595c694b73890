/**
 * Issue 15, "done when": a fuzz test. Thousands of generated `/ws` frames and publish API bodies (deep nesting, huge
 * numbers, odd Unicode with lone surrogates, wrong types, strings near the limits, duplicate and `__proto__` keys,
 * invalid UTF-8, binary and oversized frames) against a real node in production mode, beside a control subscriber.
 * Every answer must be a documented one: a reply, an error with a code of the table (never `internal`), or a close
 * with a documented code; no request may hang, nothing may reach the connection boundaries' fault counter, and the
 * process must survive (an uncaught error would end this test process).
 *
 * The cases come from a seeded PRNG: a failure names its seed and case, and `HERALD_FUZZ_SEED=<seed>` replays it.
 * `HERALD_FUZZ_FRAMES` / `HERALD_FUZZ_BODIES` change how many are sent.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { signToken } from '../src/auth/jwt.js';
import { sealChannel } from '../src/auth/sealed-key.js';
import { DISCONNECT_TABLE, ERROR_TABLE } from '../src/errors.js';
import { faultCounts } from '../src/util/faults.js';
import { guarded } from './helpers/guard.js';
import { documentedHttpAnswer, publishFast, publishNodeHttp, seededRandom } from './helpers/hostile.js';
import { startServer, TEST_API_KEY, TEST_SECRET, type TestServer } from './helpers/server.js';

const SEED = Number(process.env['HERALD_FUZZ_SEED'] ?? 20_261_202);
const FRAMES = Number(process.env['HERALD_FUZZ_FRAMES'] ?? 4000);
const BODIES = Number(process.env['HERALD_FUZZ_BODIES'] ?? 2000);
const LANES = 8;
const MAX_BODY = 64 * 1024;
const MAX_FRAME = 64 * 1024;
/** Close codes a client may see on /ws for what it sent (docs/protocol.md "Closing"). */
const DOCUMENTED_CLOSES = new Map<number, string | undefined>([
  [DISCONNECT_TABLE.bad_frame.code, 'bad_frame'],
  [DISCONNECT_TABLE.too_large.code, undefined], // 'too_large' from Herald, or ws's own for an oversized frame
  [1007, undefined], // invalid UTF-8 in a text frame (RFC 6455)
  [1002, undefined], // other RFC 6455 violations
]);

let node: TestServer;
let controlToken: string;
let publishToken: string;
let key: string;

before(async () => {
  node = await startServer({
    dev: false,
    // guard.ts counts lines, and a heartbeat is an empty line: none during a long run on a loaded machine.
    heartbeatSeconds: 3600,
    maxBodyBytes: MAX_BODY,
    wsMaxFrameBytes: MAX_FRAME,
    namespaces: { pub: { anonymous: true, clientPublish: true } },
  });
  controlToken = await signToken({ secret: TEST_SECRET, channels: ['control'], ttlSeconds: 600 });
  publishToken = await signToken({ secret: TEST_SECRET, channels: ['fz.*', 'news'], publish: true, subject: 'fuzzer', ttlSeconds: 600 });
  key = sealChannel('fz.sealed', { secret: TEST_SECRET, ttlSeconds: 600 });
});
after(() => node.close());

// --- generators ----------------------------------------------------------------------------------------------------

type Rng = () => number;
const int = (r: Rng, n: number): number => Math.floor(r() * n);
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[int(r, xs.length)] as T;

/** String contents as JSON text (already escaped where needed), from plain to hostile. */
function jsonString(r: Rng): string {
  switch (int(r, 12)) {
    case 0:
      return '""';
    case 1:
      return JSON.stringify('x'.repeat(int(r, 40)));
    case 2:
      return '"\\ud800"'; // a lone high surrogate, escaped
    case 3:
      return '"\\udfff\\ud800"'; // reversed pair
    case 4:
      return JSON.stringify('\u2028\u2029\u0000\u001f\u007f\u0085\ufeff\uffff');
    case 5:
      return JSON.stringify('🦊 café ﷽ 𝌆 \u0301\u200d');
    case 6:
      return '"\\u0000\\n\\t\\"\\\\\\/"';
    case 7:
      return JSON.stringify('['.repeat(int(r, 200)) + '{'.repeat(int(r, 200))); // brackets in a string are text
    case 8:
      return JSON.stringify('\\'.repeat(int(r, 30)) + '"'); // escapes before a quote
    case 9:
      return `"${'\ud83e'}"`; // a raw lone surrogate: becomes U+FFFD on the wire
    case 10:
      return JSON.stringify('y'.repeat(int(r, 2000)));
    default:
      return JSON.stringify(String.fromCharCode(...Array.from({ length: 8 }, () => int(r, 0x10000))));
  }
}

function jsonNumber(r: Rng): string {
  return pick(r, [
    '0', '-0', '1', '-1', '1e308', '1e309', '-1e999', '5e-324', '1e-400', '9e20', '1E5', '0.1', '123456789012345678901234567890',
    '9007199254740993', '-9007199254740993', '1' + '0'.repeat(400), '0.' + '0'.repeat(300) + '1', '3.14159e+10',
  ]);
}

function jsonValue(r: Rng, depth: number): string {
  const k = depth > 6 ? int(r, 4) : int(r, 7);
  switch (k) {
    case 0:
      return jsonString(r);
    case 1:
      return jsonNumber(r);
    case 2:
      return pick(r, ['true', 'false', 'null']);
    case 3:
      return jsonString(r);
    case 4:
      return `[${Array.from({ length: int(r, 5) }, () => jsonValue(r, depth + 1)).join(',')}]`;
    case 5:
      return jsonObject(r, depth + 1, Array.from({ length: int(r, 4) }, () => [jsonKey(r), jsonValue(r, depth + 1)] as const));
    default:
      return deepNest(r);
  }
}

function jsonKey(r: Rng): string {
  return pick(r, ['"__proto__"', '"constructor"', '"prototype"', '"toString"', '"a"', '""', '"\\ud800"', '"data"', '"op"', '"id"']);
}

/** Nesting from shallow to far past the bound, in arrays, objects or both. */
function deepNest(r: Rng): string {
  const depth = pick(r, [1, 10, 62, 63, 64, 65, 100, 1000, 5000, 20_000]);
  switch (int(r, 3)) {
    case 0:
      return '['.repeat(depth) + ']'.repeat(depth);
    case 1:
      return '{"a":'.repeat(depth) + '0' + '}'.repeat(depth);
    default:
      return '[{"a":'.repeat(Math.ceil(depth / 2)) + '1' + '}]'.repeat(Math.ceil(depth / 2));
  }
}

/** An object's JSON text from entries written as is: keys may repeat. */
function jsonObject(_r: Rng, _depth: number, entries: readonly (readonly [string, string])[]): string {
  return `{${entries.map(([k, v]) => `${k}:${v}`).join(',')}}`;
}

function channelValue(r: Rng): string {
  return pick(r, [
    '"fz.a"', '"fz.b"', '"pub:room"', '"news"', '"secret"', '""', JSON.stringify('c'.repeat(255)), JSON.stringify('c'.repeat(256)),
    '"fz.\\u0000"', '"fz.\\ud800"', '"pub:🦊"', '42', 'null', '["fz.a"]', '{"a":1}', 'true',
  ]);
}

function tokenValue(r: Rng): string {
  return pick(r, [
    JSON.stringify(publishToken), JSON.stringify(controlToken), '"abc"', '"a.b.c"', '""', '42', 'null', '["x"]',
    JSON.stringify('eyJhbGciOiJub25lIn0.eyJjaGFubmVscyI6WyIqIl19.'), // alg none, every channel
    JSON.stringify(publishToken.slice(0, -2) + 'xx'), JSON.stringify('A'.repeat(8193)), JSON.stringify(`${publishToken}.x`),
  ]);
}

function idValue(r: Rng, id: number): string | undefined {
  switch (int(r, 14)) {
    case 0:
      return undefined;
    case 1:
      return pick(r, ['null', '"' + 'i'.repeat(65) + '"', '{}', '[]', 'true', '1e999', '-1e999']);
    case 2:
      return JSON.stringify(`s${id}`);
    default:
      return String(id);
  }
}

type FrameCase = { kind: 'text'; text: string } | { kind: 'binary' | 'bytes'; bytes: Buffer };

/** One /ws frame: a request with hostile fields, or something that is not a request at all. */
function frameCase(r: Rng, id: number): FrameCase {
  const roll = int(r, 20);
  if (roll === 0) return { kind: 'binary', bytes: Buffer.from('{"op":"ping","id":1}') };
  if (roll === 1) return { kind: 'bytes', bytes: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]) }; // invalid UTF-8
  if (roll === 2) return { kind: 'text', text: pick(r, ['', 'null', '[]', '1', '"x"', '{', '{"op":', 'NaN', '{"op":"ping","id":1}x']) };
  if (roll === 3) return { kind: 'text', text: `{"op":"publish","id":${id},"channel":"fz.a","data":"${'z'.repeat(MAX_FRAME)}"}` };
  const op = pick(r, ['ping', 'ping', 'connect', 'refresh', 'subscribe', 'subscribe', 'unsubscribe', 'publish', 'publish', 'publish', 'PUBLISH', 'nope', 'null', '42', '__proto__']);
  const fields: [string, string][] = [];
  const idText = idValue(r, id);
  if (idText !== undefined) fields.push(['"id"', idText]);
  fields.push(['"op"', op === 'null' || op === '42' ? op : JSON.stringify(op)]);
  if (op === 'connect' || op === 'refresh') fields.push(['"token"', tokenValue(r)]);
  if (op === 'subscribe' || op === 'unsubscribe') {
    if (int(r, 4) === 0) fields.push(['"key"', pick(r, [JSON.stringify(key), '"AAAA"', JSON.stringify(key.slice(1)), '7'])]);
    else fields.push(['"channel"', channelValue(r)]);
    if (int(r, 3) === 0) fields.push(['"since"', pick(r, ['""', '"0-0"', '"garbage"', '"1:2:3"', '5', JSON.stringify('9'.repeat(300))])]);
  }
  if (op === 'publish' || op === 'PUBLISH') {
    fields.push(['"channel"', channelValue(r)]);
    if (int(r, 10) !== 0) fields.push(['"data"', jsonValue(r, 1)]);
  }
  // Extra, duplicate and prototype keys.
  for (let i = int(r, 3); i > 0; i--) fields.push([jsonKey(r), jsonValue(r, 2)]);
  if (int(r, 6) === 0) fields.push(['"__proto__"', `{"op":"publish","channel":"fz.a","data":1,"id":${id}}`]);
  for (let i = fields.length - 1; i > 0; i--) {
    const j = int(r, i + 1);
    [fields[i], fields[j]] = [fields[j] as [string, string], fields[i] as [string, string]];
  }
  return { kind: 'text', text: jsonObject(r, 0, fields) };
}

/** One publish API body. */
function bodyCase(r: Rng): Buffer {
  const roll = int(r, 16);
  if (roll === 0) return Buffer.from(pick(r, ['', 'null', '[]', '"x"', '{', '{"channel":"fz.a","data":}', 'channel=fz.a&data=1']));
  if (roll === 1) return Buffer.from([0x7b, 0x22, 0x63, 0xff, 0xc0, 0x22, 0x3a, 0x31, 0x7d]); // invalid UTF-8
  if (roll === 2) return Buffer.from(`{"channel":"fz.a","data":"${'q'.repeat(MAX_BODY - 30 - int(r, 40))}"}`); // near the bound
  if (roll === 3) return Buffer.from(`{"channel":"fz.a","data":"${'q'.repeat(MAX_BODY)}"}`); // over it: 413
  if (roll === 4) return Buffer.from(`{"channel":"fz.a","data":[${Array.from({ length: int(r, 14_000) }, () => '9e20').join(',')}]}`);
  const fields: [string, string][] = [];
  const shape = int(r, 5);
  if (shape === 0) fields.push(['"channels"', pick(r, ['["fz.a","fz.b"]', '[]', '["fz.a",7]', '"fz.a"', JSON.stringify(Array.from({ length: 101 }, (_, i) => `fz.${i}`))])]);
  else if (shape === 1) fields.push(['"channel"', channelValue(r)], ['"channels"', '["fz.a"]']);
  else if (shape !== 2) fields.push(['"channel"', channelValue(r)]);
  if (int(r, 8) !== 0) fields.push(['"data"', jsonValue(r, 1)]);
  for (let i = int(r, 3); i > 0; i--) fields.push([jsonKey(r), jsonValue(r, 2)]);
  if (int(r, 6) === 0) fields.push(['"__proto__"', '{"channel":"fz.a","data":"p"}']);
  return Buffer.from(jsonObject(r, 0, fields));
}

// --- the lanes -----------------------------------------------------------------------------------------------------

interface Outcome {
  what: string;
  ok: boolean;
}

/** One WebSocket at a time on a lane: frames sent one after another, each waiting for its answer or the close. */
class Lane {
  private ws: WebSocket | undefined;
  private waiter: ((o: Outcome) => void) | undefined;
  messages = 0;

  constructor(private readonly url: string, private readonly withToken: boolean) {}

  private open(): Promise<WebSocket> {
    return new Promise((resolve, reject) => {
      const q = this.withToken ? `?token=${publishToken}&channel=fz.a&channel=pub:room` : '';
      const ws = new WebSocket(`${this.url.replace(/^http/, 'ws')}/ws${q}`);
      ws.on('message', (raw) => {
        let f: { type?: string; error?: { code?: string } };
        try {
          f = JSON.parse(String(raw)) as typeof f;
        } catch {
          return this.settle({ what: `a server frame that is not JSON: ${String(raw).slice(0, 100)}`, ok: false });
        }
        if (f.type === 'message' || f.type === 'unsubscribed' || f.type === 'position' || f.type === 'reload') {
          this.messages++;
          return;
        }
        if (f.type === 'reply') return this.settle({ what: 'reply', ok: true });
        if (f.type === 'error') {
          const code = f.error?.code ?? '';
          return this.settle({ what: `error ${code}`, ok: code in ERROR_TABLE && code !== 'internal' });
        }
        this.settle({ what: `unknown frame ${String(raw).slice(0, 100)}`, ok: false });
      });
      ws.once('close', (code, reason) => {
        this.ws = undefined;
        const expected = DOCUMENTED_CLOSES.get(code);
        const ok = DOCUMENTED_CLOSES.has(code) && (expected === undefined || expected === reason.toString());
        this.settle({ what: `close ${code} ${reason.toString()}`, ok });
      });
      ws.on('error', () => undefined);
      ws.once('open', () => resolve(ws));
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    });
  }

  private settle(o: Outcome): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.(o);
  }

  async send(c: FrameCase): Promise<Outcome> {
    const ws = (this.ws ??= await this.open());
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        resolve({ what: 'no answer within 10 s', ok: false });
      }, 10_000);
      this.waiter = (o) => {
        clearTimeout(timer);
        resolve(o);
      };
      if (c.kind === 'text') ws.send(c.text);
      else ws.send(c.bytes, { binary: c.kind === 'binary' });
    });
  }

  async close(): Promise<void> {
    const ws = this.ws;
    if (!ws) return;
    await new Promise<void>((r) => {
      ws.once('close', () => r());
      ws.close();
    });
  }
}

test(`fuzz: ${FRAMES} generated /ws frames and ${BODIES} publish API bodies get documented answers (seed ${SEED})`, async (t) => {
  t.diagnostic(`seed ${SEED}: replay with HERALD_FUZZ_SEED=${SEED}`);
  const started = Date.now();
  const internalBefore = [...faultCounts('internal')].reduce((n, [, v]) => n + v, 0);
  const tally = new Map<string, number>();
  const count = (what: string): void => void tally.set(what, (tally.get(what) ?? 0) + 1);

  await guarded(node, { url: `${node.url}/sub?token=${controlToken}`, channel: 'control' }, async ({ tick }) => {
    // WebSocket frames: each lane has its own generator, so a failure names (seed, lane, case).
    await Promise.all(
      Array.from({ length: LANES }, async (_, laneNo) => {
        const r = seededRandom(SEED * 31 + laneNo);
        const lane = new Lane(node.url, laneNo % 2 === 0);
        for (let i = 0; i < FRAMES / LANES; i++) {
          const c = frameCase(r, i + 1);
          const o = await lane.send(c);
          count(o.what.replace(/ .*/, '') === 'error' ? o.what : o.what.split(' ').slice(0, 2).join(' '));
          if (!o.ok) {
            const shown = c.kind === 'text' ? c.text : `${c.kind} ${c.bytes.toString('hex')}`;
            assert.fail(`seed ${SEED}, lane ${laneNo}, case ${i}: ${o.what} for ${JSON.stringify(shown.slice(0, 300))}`);
          }
        }
        await lane.close();
      }),
    );
    await tick();

    // Publish API bodies, alternately on the fast path and on node:http.
    await Promise.all(
      Array.from({ length: LANES }, async (_, laneNo) => {
        const r = seededRandom(SEED * 37 + laneNo);
        for (let i = 0; i < BODIES / LANES; i++) {
          const body = bodyCase(r);
          const send = i % 2 === 0 ? publishFast : publishNodeHttp;
          const a = await send(node.url, body, int(r, 30) === 0 ? 'wrong-key' : TEST_API_KEY);
          count(`http ${a.status}${a.body.error ? ` ${a.body.error.code}` : ''}`);
          if (!documentedHttpAnswer(a)) {
            assert.fail(`seed ${SEED}, body lane ${laneNo}, case ${i} (${send.name}): ${a.raw.slice(0, 300)} for ${JSON.stringify(body.toString('latin1').slice(0, 300))}`);
          }
        }
      }),
    );
  });

  const internalAfter = [...faultCounts('internal')].reduce((n, [, v]) => n + v, 0);
  assert.equal(internalAfter - internalBefore, 0, 'no input reached a connection boundary as an unexpected error');
  const seconds = (Date.now() - started) / 1000;
  t.diagnostic(`${FRAMES + BODIES} cases in ${seconds.toFixed(1)} s: ${JSON.stringify(Object.fromEntries([...tally].sort()))}`);
  // Every kind of answer was reached, so the generator is not stuck on one path.
  for (const expected of ['reply', 'error forbidden', 'error invalid_channel', 'close 3501', 'close 1009', 'close 1007', 'http 200', 'http 400 bad_request', 'http 413 payload_too_large', 'http 401 unauthorized']) {
    assert.ok(tally.has(expected), `the fuzz reached "${expected}": ${JSON.stringify(Object.fromEntries(tally))}`);
  }
  assert.ok(seconds < 60, `the fuzz ran in ${seconds.toFixed(1)} s`);
});
