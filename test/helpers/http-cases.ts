/**
 * A seeded generator of HTTP/1.x requests for the differential test (test/http-differential.test.ts): the plain
 * requests Herald's readers serve, and the variants a parser can get wrong. The same seed gives the same cases.
 */
import { TEST_API_KEY } from './server.js';

export interface HttpCase {
  /** A short description of what was varied (printed on a disagreement). */
  readonly what: string;
  /** The bytes, in the TCP segments they are sent in. */
  readonly parts: readonly Buffer[];
  /** How many answers a server that accepts every request would send. */
  readonly requests: number;
  /** The first request is a HEAD (its answer has no body). */
  readonly headFirst: boolean;
  /** Pipelined: the first request alone (node:http's answer to it alone is also a right first answer, see differential.ts). */
  readonly first?: Buffer;
}

/** mulberry32: a small, fast, seedable PRNG (good enough to pick cases; not for secrets). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
const chance = (r: Rand, p: number): boolean => r() < p;

const CTL = [0x00, 0x01, 0x08, 0x0b, 0x0c, 0x0e, 0x1b, 0x1f, 0x7f];

/** One request as text (latin1: a char per byte), with a note of what was varied. */
function request(r: Rand, notes: string[]): string {
  const route = pick(r, ['sub', 'sub', 'sse', 'publish', 'publish', 'raw-publish', 'health', 'health', 'ws', 'unknown', 'sub', 'publish', 'sse', 'unknown', 'raw-publish', 'health', 'ws', 'sub', 'publish', 'poll'] as const);
  const channel = `c${Math.floor(r() * 50)}`;
  let method = route === 'publish' || route === 'raw-publish' ? 'POST' : 'GET';
  if (chance(r, 0.08)) method = pick(r, ['HEAD', 'OPTIONS', 'PUT', 'DELETE', 'get', 'POST', 'GET', 'PRI', 'CONNECT']);
  let target = {
    sub: `/sub?channel=${channel}`,
    sse: `/sse?channel=${channel}`,
    publish: '/api/publish',
    'raw-publish': `/api/publish?channel=${channel}`,
    health: pick(r, ['/healthz', '/readyz']),
    // Never published to: what a poll answers must not depend on which other case published when.
    poll: '/poll?channel=never-published',
    ws: '/ws',
    unknown: pick(r, ['/', '/nope', '/sub/', '/SUB?channel=a', '/api/publish/x']),
  }[route];
  const targetVariant = r();
  if (targetVariant < 0.05) {
    target = `http://localhost${target}`;
    notes.push('absolute-form');
  }
  else if (targetVariant < 0.07) {
    target = `https://localhost:1${target}`;
    notes.push('absolute-form https');
  }
  else if (targetVariant < 0.09) {
    target = '*';
    notes.push('asterisk-form');
  }
  else if (targetVariant < 0.11) {
    target = `${target}${target.includes('?') ? '&' : '?'}x=${'q'.repeat(520)}`;
    notes.push('long target');
  }
  else if (targetVariant < 0.13) {
    target = `${target}#frag`;
    notes.push('fragment');
  }
  else if (targetVariant < 0.15) {
    target = `${target}${target.includes('?') ? '&' : '?'}x=a${String.fromCharCode(pick(r, [...CTL, 0x09, 0x20, 0x22, 0x3c, 0x5c, 0x7b]))}b`;
    notes.push('odd byte in target');
  } else if (targetVariant < 0.16) {
    target = target.replace('/', '//');
    notes.push('double slash');
  }

  let version = 'HTTP/1.1';
  const v = r();
  if (v < 0.12) {
    version = 'HTTP/1.0';
    notes.push('HTTP/1.0');
  }
  else if (v < 0.14) {
    version = pick(r, ['HTTP/1.2', 'HTTP/2.0', 'http/1.1', 'HTTP/1.1 ', 'HTTP/01.1']);
    notes.push(`version ${version}`);
  }
  else if (v < 0.15) {
    version = '';
    notes.push('HTTP/0.9');
  }
  let line = version === '' ? `${method} ${target}` : `${method} ${target} ${version}`;
  if (chance(r, 0.02)) {
    line = line.replace(' ', '  ');
    notes.push('two spaces');
  }

  const headers: string[] = [];
  const hostVariant = r();
  if (hostVariant < 0.08) notes.push('no Host');
  else if (hostVariant < 0.11) {
    headers.push('Host: localhost', 'Host: evil.example');
    notes.push('two Hosts');
  }
  else if (hostVariant < 0.13) {
    headers.push('Host: evil.example');
    notes.push('foreign Host');
  }
  else if (hostVariant < 0.14) {
    headers.push('Host:');
    notes.push('empty Host');
  }
  else headers.push('Host: localhost');

  let body = '';
  if (route === 'publish') body = JSON.stringify({ channel, data: 'x'.repeat(Math.floor(r() * 20)) });
  if (route === 'raw-publish') body = 'hello';
  if (route === 'publish' && chance(r, 0.05)) {
    body = 'x'.repeat(1100);
    notes.push('body over the bound');
  }
  if (route !== 'publish' && route !== 'raw-publish' && chance(r, 0.05)) {
    body = 'abc';
    notes.push('body on a GET');
  }
  if (route === 'publish' || route === 'raw-publish') {
    if (chance(r, 0.1)) {
      headers.push(`Authorization: Bearer ${chance(r, 0.5) ? TEST_API_KEY : 'wrong'}`);
      notes.push('Authorization');
    }
    if (chance(r, 0.03)) {
      headers.push(`Authorization: Bearer ${TEST_API_KEY}`, 'Authorization: Bearer other');
      notes.push('two Authorizations');
    }
    if (route === 'publish') headers.push('Content-Type: application/json');
  }

  let chunked = false;
  const framing = r();
  const len = String(Buffer.byteLength(body, 'latin1'));
  if (framing < 0.05) {
    headers.push(`Content-Length: ${len}`, `Content-Length: ${len}`);
    notes.push('two equal Content-Lengths');
  }
  else if (framing < 0.08) {
    headers.push(`Content-Length: ${len}`, 'Content-Length: 1');
    notes.push('two Content-Lengths');
  }
  else if (framing < 0.14) {
    const bad = pick(r, [`+${len}`, `-${len}`, ` ${len} `, `${len} ${len}`, `${len}, ${len}`, '0x1', '', 'abc', '99999999999999999999', `00${len}`, `${len}\t`]);
    headers.push(`Content-Length: ${bad}`);
    notes.push(`Content-Length ${JSON.stringify(bad)}`);
  } else if (framing < 0.22) {
    const te = pick(r, ['chunked', 'Chunked', 'gzip', 'gzip, chunked', 'chunked, gzip', 'identity', 'chunked ', ' chunked', 'chunked, chunked']);
    headers.push(`Transfer-Encoding: ${te}`);
    notes.push(`Transfer-Encoding ${JSON.stringify(te)}`);
    if (chance(r, 0.3)) {
      headers.push(`Content-Length: ${len}`);
      notes.push('and Content-Length');
    }
    chunked = true;
  } else if (body !== '' || chance(r, 0.1)) headers.push(`Content-Length: ${len}`);

  const odd = r();
  if (odd < 0.05) {
    headers.push('X-Folded: a', ' b');
    notes.push('obs-fold');
  }
  else if (odd < 0.1) {
    const b = pick(r, CTL);
    headers.push(`X-Ctl: a${String.fromCharCode(b)}b`);
    notes.push(`control byte 0x${b.toString(16)} in a value`);
  } else if (odd < 0.15) {
    const h = pick(r, ['X-A : b', 'X-A\t: b', ' X-A: b', 'X-A', ': b', 'X(A): b', 'X-A:b', 'X-A:   b   ', 'X-A: \u00e9', 'X-A: a\tb']);
    headers.splice(Math.floor(r() * (headers.length + 1)), 0, h);
    notes.push(`header line ${JSON.stringify(h)}`);
  } else if (odd < 0.17) {
    headers.push(...Array.from({ length: 120 }, (_, i) => `X-Many-${i}: v`));
    notes.push('many header lines');
  }
  else if (odd < 0.19) {
    headers.push(`X-Pad: ${'p'.repeat(2100)}`);
    notes.push('header block over the bound');
  }
  else if (odd < 0.21) {
    headers.push('Expect: 100-continue');
    notes.push('Expect');
  }
  else if (odd < 0.23) {
    headers.push('Upgrade: websocket');
    notes.push('Upgrade');
  }
  else if (odd < 0.25) {
    headers.push('Cookie: a=1', 'Cookie: b=2');
    notes.push('two Cookies');
  }
  else if (odd < 0.3) {
    headers.push(pick(r, ['Connection: close', 'Connection: keep-alive', 'Connection: Close, x']));
    notes.push('Connection');
  }

  const payload = chunked ? `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`.replace(/^0\r\n\r\n0\r\n\r\n$/, '0\r\n\r\n') : body;
  let text = `${line}\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n${payload}`;
  const ends = r();
  if (ends < 0.05) {
    text = text.replace(/\r\n/g, '\n');
    notes.push('LF line ends');
  }
  else if (ends < 0.08) {
    // One line end without its CR, somewhere in the head.
    const head = text.indexOf('\r\n\r\n');
    const at = text.lastIndexOf('\r\n', Math.floor(r() * head));
    if (at >= 0) {
      text = text.slice(0, at) + text.slice(at + 1);
      notes.push('one bare LF');
    }
  } else if (ends < 0.09) {
    text = text.replace('\r\n', '\r');
    notes.push('bare CR');
  }
  else if (ends < 0.1) {
    text = `\r\n${text}`;
    notes.push('leading CRLF');
  }
  return text;
}

/** A pipelined request behind the first (a stream or not): a health check nobody should answer twice. */
const BEHIND = 'GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n';

/** Split `bytes` at the given offsets (sorted, inside the buffer). */
export function splitAt(bytes: Buffer, at: readonly number[]): Buffer[] {
  const parts: Buffer[] = [];
  let from = 0;
  for (const i of at) {
    if (i > from && i < bytes.length) {
      parts.push(bytes.subarray(from, i));
      from = i;
    }
  }
  parts.push(bytes.subarray(from));
  return parts;
}

/** `count` generated cases from `seed`. */
export function generateCases(seed: number, count: number): HttpCase[] {
  const r = prng(seed);
  const out: HttpCase[] = [];
  for (let i = 0; i < count; i++) {
    const notes: string[] = [];
    let text = request(r, notes);
    const alone = text;
    let requests = 1;
    if (chance(r, 0.1)) {
      text += chance(r, 0.5) ? BEHIND : request(r, notes).replace(/^HEAD /, 'GET ');
      requests = 2;
      notes.push('pipelined');
    }
    const bytes = Buffer.from(text, 'latin1');
    let parts: Buffer[] = [bytes];
    if (chance(r, 0.25)) {
      const n = 1 + Math.floor(r() * 3);
      parts = splitAt(bytes, Array.from({ length: n }, () => 1 + Math.floor(r() * (bytes.length - 1))).sort((a, b) => a - b));
      notes.push(`split in ${parts.length}`);
    }
    out.push({
      what: notes.join(', ') || 'plain',
      parts,
      requests,
      headFirst: /^(\r\n)?HEAD /.test(text),
      ...(requests > 1 ? { first: Buffer.from(alone, 'latin1') } : {}),
    });
  }
  return out;
}

/** Every split of each request into two TCP segments (the bytes that must not depend on how they arrive). */
export function everySplit(): HttpCase[] {
  const body = '{"channel":"s","data":"x"}';
  const bases: [string, string, number][] = [
    ['a /sub stream', 'GET /sub?channel=s HTTP/1.1\r\nHost: localhost\r\n\r\n', 1],
    ['a publish', `POST /api/publish HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${body.length}\r\n\r\n${body}`, 1],
    ['two pipelined publishes', `POST /api/publish HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${body.length}\r\n\r\n${body}`.repeat(2), 2],
    ['a stream with a request behind it', `GET /sse?channel=s HTTP/1.1\r\nHost: localhost\r\n\r\n${BEHIND}`, 2],
    ['an LF-only /sub', 'GET /sub?channel=s HTTP/1.1\nHost: localhost\n\n', 1],
  ];
  const out: HttpCase[] = [];
  for (const [what, text, requests] of bases) {
    const bytes = Buffer.from(text, 'latin1');
    for (let i = 1; i < bytes.length; i++) out.push({ what: `${what}, split at ${i}`, parts: splitAt(bytes, [i]), requests, headFirst: false });
  }
  return out;
}
