/**
 * Pieces for the hostile-input tests (issue 15): deep JSON, publish requests on each of the two HTTP paths, a
 * latency probe, and a seeded PRNG so a generated case can be reproduced from its seed.
 */
import { ERROR_TABLE } from '../../src/errors.js';
import { parseHead, rawExchange } from './raw.js';
import { TEST_API_KEY } from './server.js';
import { openWs, type WsClient } from './ws.js';

/** `[[[...]]]` nested `depth` deep (depth 1 is `[]`), with `inner` at the bottom. */
export function deepArray(depth: number, inner = ''): string {
  return '['.repeat(depth) + inner + ']'.repeat(depth);
}

/** `{"a":{"a":...}}` nested `depth` deep. */
export function deepObject(depth: number): string {
  return '{"a":'.repeat(depth - 1) + '{}' + '}'.repeat(depth - 1);
}

/** The frame of issue 15, finding 1: a publish whose `data` is nested `depth` deep (about 8.4 KB at 4,200). */
export function crashFrame(depth = 4200): string {
  return `{"op":"publish","id":1,"channel":"x","data":${deepArray(depth)}}`;
}

export interface HttpAnswer {
  status: number;
  body: { error?: { code: string; message: string }; id?: unknown; ids?: unknown };
  raw: string;
}

function answerOf(raw: string): HttpAnswer {
  const head = parseHead(raw);
  let body: HttpAnswer['body'] = {};
  const text = head.body.includes('\r\n') && head.headers['transfer-encoding'] === 'chunked' ? dechunk(head.body) : head.body;
  try {
    body = JSON.parse(text) as HttpAnswer['body'];
  } catch {
    /* not JSON: the assertions on `body` will say so */
  }
  return { status: head.status, body, raw };
}

function dechunk(body: string): string {
  let out = '';
  let at = 0;
  for (;;) {
    const nl = body.indexOf('\r\n', at);
    if (nl < 0) return out;
    const size = parseInt(body.slice(at, nl), 16);
    if (!(size > 0)) return out;
    out += body.slice(nl + 2, nl + 2 + size);
    at = nl + 2 + size + 2;
  }
}

/**
 * POST /api/publish with a Content-Length body on a fresh connection: the fast publish path
 * (src/http/fast-publish.ts) serves it.
 */
export async function publishFast(url: string, body: string | Buffer, apiKey = TEST_API_KEY): Promise<HttpAnswer> {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  const head =
    `POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${apiKey}\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${bytes.length}\r\nConnection: close\r\n\r\n`;
  return answerOf(await rawExchange(url, Buffer.concat([Buffer.from(head, 'latin1'), bytes])));
}

/** POST /api/publish with a chunked body: the fast path hands it to node:http (src/http/publish.ts `handle`). */
export async function publishNodeHttp(url: string, body: string | Buffer, apiKey = TEST_API_KEY): Promise<HttpAnswer> {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  const head =
    `POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${apiKey}\r\nContent-Type: application/json\r\n` +
    `Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n`;
  const chunk = Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`, 'latin1'), bytes, Buffer.from('\r\n0\r\n\r\n', 'latin1')]);
  return answerOf(await rawExchange(url, Buffer.concat([Buffer.from(head, 'latin1'), bytes.length > 0 ? chunk : Buffer.from('0\r\n\r\n')])));
}

/** Is `a` one of the documented answers of the publish API (a 200, or an error status with its code's body)? */
export function documentedHttpAnswer(a: HttpAnswer): boolean {
  if (a.status === 200) return a.body.id !== undefined || a.body.ids !== undefined;
  const code = a.body.error?.code;
  if (code === undefined || !(code in ERROR_TABLE)) return false;
  return ERROR_TABLE[code as keyof typeof ERROR_TABLE].status === a.status && code !== 'internal';
}

/** Nearest-rank percentile of `values` (0 < p <= 100). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

/**
 * A latency probe on the node: a WebSocket client that sends `ping` every `everyMs` and records each round trip.
 * An event loop the attack stalls shows as long round trips.
 */
export async function startPinger(url: string, everyMs = 10): Promise<{ stop(): Promise<number[]>; client: WsClient }> {
  const client = await openWs(`${url}/ws`);
  const rtts: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const t0 = performance.now();
      const answer = await client.request('ping');
      if (answer.type !== 'reply') throw new Error(`ping answered ${JSON.stringify(answer)}`);
      rtts.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    client,
    async stop() {
      running = false;
      await loop;
      client.close();
      await client.closed;
      return rtts;
    },
  };
}

/** mulberry32: a small, seeded PRNG (uniform in [0, 1)), so every generated case can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
