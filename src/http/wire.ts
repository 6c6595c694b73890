/**
 * The HTTP/1.1 wire rules Herald's hand-written readers share: one `parseHead` for the front reader (http/front.ts)
 * and the publish fast path (http/fast-publish.ts), and one `formatResponse` / `writeResponse` for every answer
 * written on a raw socket.
 *
 * Herald has three request parsers: these two and node:http's llhttp. Any disagreement between them is a possible
 * smuggling or bypass bug, so the rule is: where llhttp rejects a head, `parseHead` rejects it with the same status,
 * or defers; where llhttp accepts it, `parseHead` reads it the same way (method, target, version, headers, body
 * length), or defers. "Defer" means: this is not the plain case, node:http decides (the connection is handed to it
 * with the bytes read so far). Only the plain case is read here: `METHOD SP origin-form SP HTTP/1.0|1.1 CRLF`,
 * token header names, CRLF line ends, a `Content-Length` body or none. test/http-differential.test.ts checks the
 * rule on thousands of generated requests against node:http over real sockets.
 *
 * One deliberate difference: raw bytes 0x80-0xff in the target (curl sends a URL's UTF-8 unencoded) are read here,
 * decoded as UTF-8 (http/request.ts queryParams), where llhttp answers 400. They delimit nothing, so they cannot
 * make two parsers see different requests.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { HeraldError } from '../errors.js';

/** The bounds every reader applies to a request head (config: maxUrlBytes, maxHeaderBytes). */
export interface HeadLimits {
  readonly maxUrlBytes: number;
  readonly maxHeaderBytes: number;
}

export interface RequestHead {
  readonly method: string;
  /** The origin-form target as sent (latin1, one char per byte). */
  readonly target: string;
  /** The target up to `?`. */
  readonly path: string;
  /** The target after `?`, undecoded ('' when none). */
  readonly rawQuery: string;
  readonly version: '1.0' | '1.1';
  /** Lower-case name → value, repeated fields joined as node:http joins them (see `addField`). */
  readonly headers: ReadonlyMap<string, string>;
  /** Names that appeared more than once (e.g. two `Authorization` fields). */
  readonly repeated: ReadonlySet<string>;
  /** Bytes of the head, its blank line included: the body (if any) starts there. */
  readonly length: number;
  /** The `Content-Length` (0 when absent). A `Transfer-Encoding` is never the plain case (it defers). */
  readonly contentLength: number;
  /** The connection may carry another request after this one (HTTP/1.1 without `close`, HTTP/1.0 with keep-alive). */
  readonly keepAlive: boolean;
}

/** The verdicts that end reading here, or wait: shared by the request line and the whole head. */
export type NotYet =
  /** Not enough bytes yet to decide. */
  | { readonly kind: 'partial' }
  /** What node:http refuses too (same status): answer it and close. */
  | { readonly kind: 'refuse'; readonly error: HeraldError }
  /** Not the plain case: hand the connection (bytes read so far included) to node:http. */
  | { readonly kind: 'defer'; readonly reason: string };

export type HeadVerdict = { readonly kind: 'head'; readonly head: RequestHead } | NotYet;

/** More header lines than this is not the plain case (node:http takes up to 2,000). */
export const MAX_PLAIN_HEADER_LINES = 100;
/** A request line is its target and at most this much more (`OPTIONS ` and ` HTTP/1.1`, with room). */
const LINE_OVERHEAD = 32;
const CR = 13;
const LF = 10;
const PARTIAL: NotYet = { kind: 'partial' };

/** Methods llhttp knows that the plain case reads (any other goes to node:http, which answers it). */
const REQUEST_LINE = /^(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH) (\/[!-~\u0080-\u00ff]*) HTTP\/1\.([01])$/;
/** A token (RFC 9110 §5.6.2), as llhttp checks header names. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** A field value: HTAB, SP, VCHAR, obs-text; anything else (NUL, other CTLs, DEL) llhttp answers 400. */
const BAD_VALUE_BYTE = /[^\t\x20-\x7e\x80-\xff]/;
/** node:http keeps the first of these when repeated (its IncomingMessage drops the rest). */
const FIRST_WINS = new Set([
  'age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host', 'if-modified-since',
  'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'referer', 'retry-after',
  'server', 'user-agent',
]);

function bad(message: string): NotYet {
  return { kind: 'refuse', error: new HeraldError('bad_request', message) };
}

/**
 * Read the request head at the start of `buf`. `buf` may hold more than the head (a body, pipelined requests) or
 * less (partial). Pure: no I/O, the same answer for the same bytes however they were split across reads.
 */
export type LineVerdict =
  | { readonly kind: 'line'; readonly method: string; readonly target: string; readonly version: '1.0' | '1.1'; readonly end: number }
  | NotYet;

/**
 * The request line at the start of `buf`, alone (a reader picks a route by it before the rest of the head is
 * here). `end` is the offset just past its CRLF.
 */
export function parseRequestLine(buf: Buffer, limits: HeadLimits): LineVerdict {
  if (buf.length === 0) return PARTIAL;
  // llhttp skips empty lines before a request line: rare enough to leave to it.
  if (buf[0] === CR || buf[0] === LF) return { kind: 'defer', reason: 'empty line before the request line' };
  const lineLimit = limits.maxUrlBytes + LINE_OVERHEAD;
  const lineEnd = buf.subarray(0, lineLimit + 1).indexOf(LF);
  if (lineEnd < 0) {
    // node:http answers an over-long line (414 from the route, 431 past its own bound).
    return buf.length > lineLimit ? { kind: 'defer', reason: 'request line over the URL bound' } : lineCr(buf, buf.length);
  }
  if (buf[lineEnd - 1] !== CR) {
    // After a version llhttp wants its CR (400); a line with no version is HTTP/0.9 to it, LF and all.
    return REQUEST_LINE.test(buf.toString('latin1', 0, lineEnd)) ? bad('a line ends without CR') : { kind: 'defer', reason: 'HTTP/0.9' };
  }
  const stray = lineCr(buf, lineEnd - 1);
  if (stray !== PARTIAL) return stray;
  const m = REQUEST_LINE.exec(buf.toString('latin1', 0, lineEnd - 1));
  if (!m || m[1] === undefined || m[2] === undefined) {
    // Absolute-form, asterisk-form, HTTP/0.9, 2.0, unknown methods, odd spacing: node:http's rules decide.
    return { kind: 'defer', reason: 'not a plain request line' };
  }
  return { kind: 'line', method: m[1], target: m[2], version: m[3] === '0' ? '1.0' : '1.1', end: lineEnd + 1 };
}

/**
 * Read the request head at the start of `buf`. `buf` may hold more than the head (a body, pipelined requests) or
 * less (partial). Pure: no I/O, the same answer for the same bytes however they were split across reads.
 */
export function parseHead(buf: Buffer, limits: HeadLimits): HeadVerdict {
  const line = parseRequestLine(buf, limits);
  if (line.kind !== 'line') return line;
  const { method, target, version } = line;
  const headers = new Map<string, string>();
  const repeated = new Set<string>();
  let headerBytes = 0;
  let lines = 0;
  let contentLength: string | undefined;
  let pos = line.end;
  for (;;) {
    if (pos >= buf.length) return partialHead(buf, limits, headerBytes, target);
    const first = buf[pos];
    if (first === CR || first === LF) {
      if (first === LF) return bad('a line ends without CR');
      if (pos + 1 >= buf.length) return partialHead(buf, limits, headerBytes, target);
      if (buf[pos + 1] !== LF) return bad('a CR without LF');
      pos += 2;
      break;
    }
    // A line starting with whitespace: obs-fold (RFC 9112 §5.2), or a space before the first field. llhttp: 400.
    if (first === 0x20 || first === 0x09) return bad('a folded header line');
    const end = buf.indexOf(LF, pos);
    if (end < 0) return partialHead(buf, limits, headerBytes, target);
    if (buf[end - 1] !== CR) return bad('a line ends without CR');
    const text = buf.toString('latin1', pos, end - 1);
    if (text.includes('\r')) return bad('a CR without LF');
    pos = end + 1;
    if (++lines > MAX_PLAIN_HEADER_LINES) return { kind: 'defer', reason: 'many header lines' };
    const colon = text.indexOf(':');
    const name = colon < 0 ? '' : text.slice(0, colon);
    if (!TOKEN.test(name)) return bad('malformed header name');
    const value = trimOws(text.slice(colon + 1));
    if (BAD_VALUE_BYTE.test(value)) return bad(`header ${name.slice(0, 64)} holds a control character`);
    headerBytes += name.length + value.length + 4; // as node:http's path counts them (router.ts): name, value, CRLFs
    const lower = name.toLowerCase();
    if (lower === 'content-length') {
      if (contentLength !== undefined) return bad('more than one Content-Length');
      // llhttp takes digits and trailing spaces, not a trailing tab (its number parser ends at SP only).
      if (!/^[ \t]*\d+ *$/.test(text.slice(colon + 1))) return bad('malformed Content-Length');
      contentLength = value;
    }
    addField(headers, repeated, lower, value);
  }
  // What llhttp decides as it parses comes first (its 400s), then what node:http's path decides (router.ts).
  if (headers.has('transfer-encoding')) {
    // Both framings at once is the classic smuggling request: llhttp refuses it, so do we. TE alone: node:http.
    if (contentLength !== undefined) return bad('both Content-Length and Transfer-Encoding');
    return { kind: 'defer', reason: 'Transfer-Encoding' };
  }
  // Past 15 digits a length is beyond any body bound, and llhttp's own overflow rules apply.
  if (contentLength !== undefined && contentLength.replace(/^0+/, '').length > 15) return { kind: 'defer', reason: 'huge Content-Length' };
  const connection = headers.get('connection')?.toLowerCase() ?? '';
  const keepAlive = version === '1.1' ? !hasToken(connection, 'close') : hasToken(connection, 'keep-alive');
  const length = contentLength === undefined ? 0 : Number(contentLength);
  // Bytes after a request that ends its connection: llhttp refuses them (HPE_CLOSED_CONNECTION), and the request
  // with them: node:http's answer is one 400.
  if (!keepAlive && buf.length > pos + length) return bad('data after a request that closes the connection');
  // An upgrade is node:http's ('upgrade' event), and so is the 100-continue dance.
  if (headers.has('upgrade')) return { kind: 'defer', reason: 'Upgrade' };
  if (headers.has('expect')) return { kind: 'defer', reason: 'Expect' };
  // The limits, in the order node:http's path checks them (router.ts): the URL, the header block, then Host.
  const over = headLimitError(target.length, headerBytes, limits);
  if (over) return { kind: 'refuse', error: over };
  if (version === '1.1' && !headers.has('host')) return bad('HTTP/1.1 request without Host');
  const q = target.indexOf('?');
  return {
    kind: 'head',
    head: {
      method,
      target,
      path: q < 0 ? target : target.slice(0, q),
      rawQuery: q < 0 ? '' : target.slice(q + 1),
      version,
      headers,
      repeated,
      length: pos,
      contentLength: length,
      keepAlive,
    },
  };
}

/**
 * The one check of the request bounds, for every reader: a target over `maxUrlBytes` is 414, then a header block
 * over `maxHeaderBytes` is 431 (counted as `headerBytesOf` counts it). node:http's own bound (`maxHeaderSize`, set
 * to both together in server.ts) only catches what is past both, so that an over-long URL still gets its 414.
 */
export function headLimitError(targetLength: number, headerBytes: number, limits: HeadLimits): HeraldError | undefined {
  if (targetLength > limits.maxUrlBytes) return new HeraldError('uri_too_long', `URL over ${limits.maxUrlBytes} bytes`);
  if (headerBytes > limits.maxHeaderBytes) return new HeraldError('header_too_large', `request headers over ${limits.maxHeaderBytes} bytes`);
  return undefined;
}

/** The header block's size as `parseHead` counts it, from node:http's `rawHeaders`: each name and value, plus 2. */
export function headerBytesOf(rawHeaders: readonly string[]): number {
  let bytes = 0;
  for (const h of rawHeaders) bytes += h.length + 2;
  return bytes;
}

/**
 * Whether bytes that arrived since `scanned` can change `parseHead`'s verdict: a line was completed, or a bound
 * crossed. A head dribbled a byte at a time is then parsed once per line, not once per byte.
 */
export function headWorthParsing(buf: Buffer, scanned: number, limits: HeadLimits): boolean {
  if (buf.indexOf(LF, scanned) >= 0) return true;
  const line = limits.maxUrlBytes + LINE_OVERHEAD;
  const head = limits.maxUrlBytes + limits.maxHeaderBytes;
  return (scanned <= line && buf.length > line) || (scanned <= head && buf.length > head) || buf.indexOf(CR, Math.max(0, scanned - 1)) >= 0;
}

/** A CR not followed by LF in `buf[0, end)` is refused (llhttp: 400); else partial. */
function lineCr(buf: Buffer, end: number): NotYet {
  const cr = buf.subarray(0, end).indexOf(CR);
  if (cr >= 0 && cr + 1 < end) return bad('a CR without LF');
  return PARTIAL;
}

/**
 * No blank line yet: partial, unless the head is already 431 however it ends: past what node:http itself takes, or
 * complete lines past the header bound (router.ts says 431 on node:http's path; an over-long URL would be 414
 * first). Refused now, not at the header timeout.
 */
function partialHead(buf: Buffer, limits: HeadLimits, headerBytes: number, target: string): NotYet {
  if (buf.length > limits.maxUrlBytes + limits.maxHeaderBytes) return tooLarge(limits);
  return headerBytes > limits.maxHeaderBytes && target.length <= limits.maxUrlBytes ? tooLarge(limits) : PARTIAL;
}

function tooLarge(limits: HeadLimits): NotYet {
  return { kind: 'refuse', error: new HeraldError('header_too_large', `request headers over ${limits.maxHeaderBytes} bytes`) };
}

function trimOws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && (s.charCodeAt(a) === 0x20 || s.charCodeAt(a) === 0x09)) a++;
  while (b > a && (s.charCodeAt(b - 1) === 0x20 || s.charCodeAt(b - 1) === 0x09)) b--;
  return s.slice(a, b);
}

/** Repeated fields as node:http's IncomingMessage keeps them: the first of FIRST_WINS, cookies with '; ', else ', '. */
function addField(headers: Map<string, string>, repeated: Set<string>, name: string, value: string): void {
  const prev = headers.get(name);
  if (prev === undefined) {
    headers.set(name, value);
    return;
  }
  repeated.add(name);
  if (FIRST_WINS.has(name)) return;
  headers.set(name, `${prev}${name === 'cookie' ? '; ' : ', '}${value}`);
}

function hasToken(list: string, token: string): boolean {
  return list.split(',').some((t) => t.trim() === token);
}

/**
 * The origin-form of a target node:http accepted: an absolute-form target (`http://host/sub?x`, RFC 9112 §3.2.2,
 * which a server must accept) becomes its path and query, with its authority; anything else is returned as it is.
 */
export function originForm(target: string): { target: string; authority?: string } {
  const m = /^https?:\/\/([^/?#]*)([^#]*)/i.exec(target);
  if (!m) return { target };
  const rest = m[2] ?? '';
  return { target: rest.startsWith('/') ? rest : `/${rest}`, authority: m[1] ?? '' };
}

let dateSecond = -1;
let dateText = '';
/** The `Date` header's value (RFC 9110 §6.6.1), formatted once a second. */
export function httpDate(now = Date.now()): string {
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(second * 1000).toUTCString();
  }
  return dateText;
}

export interface RawResponse {
  readonly status: number;
  /** Extra header fields (name → value), written as given, after `Date`. */
  readonly headers?: Readonly<Record<string, string | number>>;
  readonly body?: string;
  /** Say `Connection: close` (the connection ends after this answer). */
  readonly close?: boolean;
}

/** The bytes of one HTTP/1.1 answer: status text from node's STATUS_CODES, `Date`, `Content-Length`. */
export function formatResponse(r: RawResponse): string {
  const body = r.body ?? '';
  let text = `HTTP/1.1 ${r.status} ${STATUS_CODES[r.status] ?? 'Unknown'}\r\nDate: ${httpDate()}\r\n`;
  for (const [name, value] of Object.entries(r.headers ?? {})) text += `${name}: ${value}\r\n`;
  text += `Content-Length: ${Buffer.byteLength(body)}\r\n`;
  if (r.close) text += 'Connection: close\r\n';
  return `${text}\r\n${body}`;
}

/** Write one answer on a raw socket; returns its size in bytes. */
export function writeResponse(socket: Socket, r: RawResponse): number {
  const text = formatResponse(r);
  socket.write(text);
  return Buffer.byteLength(text);
}

/** The documented JSON error answer (`{"error":{"code","message"}}`), as every raw-socket reader writes it. */
export function errorResponse(e: HeraldError, close: boolean, extraHeaders: Readonly<Record<string, string | number>> = {}): RawResponse {
  const headers: Record<string, string | number> = { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' };
  if (e.retryAfterSeconds !== undefined) headers['Retry-After'] = e.retryAfterSeconds;
  return { status: e.status, headers: { ...headers, ...extraHeaders }, body: JSON.stringify(e.toJSON()), close };
}

/**
 * Refuse a request on a raw socket and close it: the answer, then a half-close, and the socket destroyed if the
 * client never closes its side (node:http sockets allow half-open connections).
 */
export function refuseAndClose(socket: Socket, e: HeraldError): void {
  if (socket.destroyed) return;
  if (socket.writable) socket.end(formatResponse(errorResponse(e, true)));
  socket.resume();
  socket.setTimeout(5000, () => socket.destroy());
}
