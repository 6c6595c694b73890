/**
 * Two Herald nodes with the same settings: one with its own readers (the front reader and the publish fast path),
 * one that gives every connection to node:http alone (`nodeHttpOnly`). The same bytes, sent to both over real
 * sockets, must get the same answers: node:http (llhttp) is the oracle of what a request means.
 */
import net from 'node:net';
import type { HeraldConfig } from '../../src/config.js';
import { startServer, type TestServer } from './server.js';

export interface OraclePair {
  herald: TestServer;
  node: TestServer;
  close(): Promise<void>;
}

/** Small bounds so that the limits are reached by generated requests; a short header timeout so a hang shows. */
export const ORACLE_CONFIG: Partial<HeraldConfig> = {
  headersTimeoutMs: 1000,
  maxUrlBytes: 512,
  maxHeaderBytes: 2048,
  maxBodyBytes: 1024,
  // A poll on a channel nobody publishes to is answered at its timeout, alike on both nodes.
  pollTimeoutSeconds: 1,
};

export async function startOraclePair(overrides: Partial<HeraldConfig> = {}): Promise<OraclePair> {
  const config = { ...ORACLE_CONFIG, ...overrides };
  const herald = await startServer(config);
  const node = await startServer(config, { nodeHttpOnly: true });
  return { herald, node, close: async () => void (await Promise.all([herald.close(), node.close()])) };
}

/** One answer on the wire, reduced to what must agree: status, error code, content type, framing. */
export interface Answer {
  status: number;
  /** The `code` of a JSON error body. */
  code?: string;
  contentType?: string;
  chunked: boolean;
  /** A stream was opened (a 200 with no length): nothing after it on this connection is a response. */
  stream: boolean;
}

export interface Outcome {
  answers: Answer[];
  /** The server closed the connection (after its answers, or without any). */
  closed: boolean;
}

export function describe(o: Outcome): string {
  const answers = o.answers.map((a) => `${a.status}${a.code ? `:${a.code}` : ''}${a.status < 300 && a.contentType ? ` ${a.contentType}` : ''}${a.chunked ? ' chunked' : ''}`);
  return answers.length > 0 ? answers.join(' | ') : o.closed ? 'closed without an answer' : 'no answer (hung)';
}

/**
 * Send `parts` on a fresh connection to `url`, each part in its own TCP segment (a pause between them), and read
 * the answers until the connection closes, `expected` answers have come (or a stream began), or it goes quiet.
 */
export function exchange(url: string, parts: readonly Buffer[], expected: number, headFirst = false, timeoutMs = 2500): Promise<Outcome> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ port: Number(u.port), host: u.hostname, noDelay: true });
    let received = Buffer.alloc(0);
    let closed = false;
    let done = false;
    let quiet: NodeJS.Timeout | undefined;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      clearTimeout(quiet);
      socket.destroy();
      resolve({ answers: parseAnswers(received, headFirst), closed });
    };
    const deadline = setTimeout(finish, timeoutMs);
    const check = (): void => {
      const answers = parseAnswers(received, headFirst);
      if (answers.length >= expected || answers.some((a) => a.stream)) {
        // Give a wrong extra answer (or a close) a moment to show.
        clearTimeout(quiet);
        quiet = setTimeout(finish, 40);
      }
    };
    socket.on('data', (d: Buffer) => {
      received = Buffer.concat([received, d]);
      check();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed = true;
      finish();
    });
    socket.once('connect', async () => {
      for (let i = 0; i < parts.length; i++) {
        if (done) return;
        if (i > 0) await new Promise((r) => setTimeout(r, 3));
        socket.write(parts[i] ?? Buffer.alloc(0));
      }
    });
  });
}

/**
 * The answers in `raw`, in order. A response with no length (a stream) ends the list. `headFirst`: the first
 * request was a HEAD (its answer has a length and no body).
 */
export function parseAnswers(raw: Buffer, headFirst = false): Answer[] {
  const out: Answer[] = [];
  let at = 0;
  while (at < raw.length) {
    const end = raw.indexOf('\r\n\r\n', at);
    if (end < 0) break;
    const head = raw.toString('latin1', at, end);
    const [statusLine = '', ...lines] = head.split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
    if (!m?.[1]) break;
    const headers = new Map<string, string>();
    for (const l of lines) {
      const i = l.indexOf(':');
      headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim());
    }
    const status = Number(m[1]);
    const chunked = /chunked/i.test(headers.get('transfer-encoding') ?? '');
    const length = headers.get('content-length');
    const contentType = headers.get('content-type')?.split(';')[0];
    if (status === 100) {
      at = end + 4;
      continue;
    }
    if (length === undefined && status !== 204 && status !== 304) {
      out.push({ status, contentType, chunked, stream: true });
      break;
    }
    const bodyEnd = end + 4 + (headFirst && out.length === 0 ? 0 : Number(length ?? 0));
    if (raw.length < bodyEnd) break;
    const body = raw.toString('utf8', end + 4, bodyEnd);
    const code = /"code":"([a-z_]+)"/.exec(body)?.[1];
    out.push({ status, ...(code ? { code } : {}), contentType, chunked, stream: false });
    at = bodyEnd;
  }
  return out;
}

/** Both nodes' outcomes for the same bytes. */
export async function bothOutcomes(pair: OraclePair, parts: readonly Buffer[], expected: number, headFirst = false): Promise<{ herald: Outcome; node: Outcome }> {
  const [herald, node] = await Promise.all([exchange(pair.herald.url, parts, expected, headFirst), exchange(pair.node.url, parts, expected, headFirst)]);
  return { herald, node };
}

/** One answer as the comparison sees it. */
export function describeAnswer(a: Answer | undefined): string {
  return a ? describe({ answers: [a], closed: false }) : 'none';
}
