/** Test helpers: a Herald server on a free port, and real HTTP clients that read streams line by line. */
import http from 'node:http';
import { after } from 'node:test';
import { resolveConfig, type HeraldConfig } from '../../src/config.js';
import { createHeraldServer, type HeraldServer, type HeraldServerOptions } from '../../src/server.js';

export const TEST_SECRET = 'test-secret-0123456789-abcdefghijklmnopqrstuvwxyz';
export const TEST_API_KEY = 'test-api-key-0123456789';

export interface TestServer {
  server: HeraldServer;
  url: string;
  close(): Promise<void>;
}

/** Start a node on 127.0.0.1 and a free port. `dev` defaults to true; a test secret and API key are always set. */
export async function startServer(overrides: Partial<HeraldConfig> = {}, options: HeraldServerOptions = {}): Promise<TestServer> {
  const config = resolveConfig({
    overrides: {
      port: 0,
      host: '127.0.0.1',
      logLevel: 'silent',
      dev: true,
      secret: TEST_SECRET,
      apiKeys: [TEST_API_KEY],
      // Tests compare exact seed lines (`["message","c","d"]`), so they run without history unless they ask for it;
      // ids and resume are tested with history on (resume.test.ts, smoke.test.ts with the defaults).
      historySize: 0,
      ...overrides,
    },
  });
  const server = createHeraldServer(config, options);
  await server.listen();
  return { server, url: server.url, close: () => server.close() };
}

/** An open stream: lines received so far, and ways to wait for more. */
export interface LineStream {
  status: number;
  headers: http.IncomingHttpHeaders;
  lines: string[];
  ended: Promise<void>;
  /** Resolves with the first `n` lines once they have arrived. */
  waitLines(n: number, timeoutMs?: number): Promise<string[]>;
  close(): void;
}

/**
 * GET a streaming URL with node's HTTP client and collect its body line by line. Resolves once the headers arrived
 * (for a stream: once its subscriptions are live). Non-200 answers resolve too, with the body as lines.
 */
export function openStream(url: string, headers: Record<string, string> = {}): Promise<LineStream> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent: false }, (res) => {
      const lines: string[] = [];
      const waiters: (() => void)[] = [];
      let buffer = '';
      let done = false;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let i: number;
        while ((i = buffer.indexOf('\n')) >= 0) {
          lines.push(buffer.slice(0, i));
          buffer = buffer.slice(i + 1);
        }
        for (const w of waiters.splice(0)) w();
      });
      const finish = (): void => {
        if (done) return;
        done = true;
        if (buffer.length > 0) lines.push(buffer);
        buffer = '';
        for (const w of waiters.splice(0)) w();
      };
      const ended = new Promise<void>((r) => {
        res.on('end', () => {
          finish();
          r();
        });
        res.on('close', () => {
          finish();
          r();
        });
        res.on('error', () => {
          finish();
          r();
        });
      });
      const stream: LineStream = {
        status: res.statusCode ?? 0,
        headers: res.headers,
        lines,
        ended,
        waitLines(n, timeoutMs = 5000) {
          return new Promise((ok, fail) => {
            const timer = setTimeout(
              () => fail(new Error(`timed out waiting for ${n} lines; got ${JSON.stringify(lines)}`)),
              timeoutMs,
            );
            const check = (): void => {
              if (lines.length >= n) {
                clearTimeout(timer);
                ok(lines.slice(0, n));
              } else if (done) {
                clearTimeout(timer);
                fail(new Error(`stream ended after ${JSON.stringify(lines)}`));
              } else waiters.push(check);
            };
            check();
          });
        },
        close: () => req.destroy(),
      };
      resolve(stream);
    });
    req.on('error', reject);
  });
}

/** POST /api/publish and return the status and parsed body. */
export async function publish(
  url: string,
  body: unknown,
  apiKey: string | undefined = TEST_API_KEY,
): Promise<{ status: number; body: unknown }> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (apiKey !== undefined) headers['Authorization'] = `Bearer ${apiKey}`;
  const res = await fetch(`${url}/api/publish`, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON: keep the text */
  }
  return { status: res.status, body: parsed };
}

/** Poll `check` until it returns true or the time runs out. */
export async function eventually(check: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Cleanups run once the test file is done, newest first (servers, Redis, clients a file's tests started and share).
 * Push to the array returned.
 */
export function fileCleanups(): (() => Promise<void> | void)[] {
  const cleanups: (() => Promise<void> | void)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });
  return cleanups;
}
