/**
 * The auth hook in a real browser (issue 10 §3): headless Chromium logs in on the app's origin, which sets a session
 * cookie; a page of that origin then reads Herald (another origin, same site) with a plain EventSource
 * (`withCredentials`) and with the SDK over WebSocket, SSE and long-polling. The browser sends the cookie by itself;
 * Herald forwards it to the app's own auth hook, which allows the session's channels. Without the login, the hook
 * denies and nothing arrives.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { publish, startServer, type TestServer } from '../helpers/server.js';
import { chromiumAvailable, CHROMIUM_PATH, launchChromium } from './chromium.js';

const CLIENT_DIST = fileURLToPath(new URL('../../../client/dist/', import.meta.url));
const MISSING = chromiumAvailable() ? undefined : `no Chromium at ${CHROMIUM_PATH} (apt-get install chromium; .ci/run does)`;
if (MISSING && process.env['CI']) throw new Error(MISSING);

const SESSION = 'sess-alice-7f3a9c';

interface Asked {
  event: string;
  transport: string;
  channels: string[];
  cookies: Record<string, string>;
}

const PLAIN = `<!doctype html><meta charset="utf-8"><script>
  const q = new URLSearchParams(location.search);
  const s = (window.herald = { got: [], state: 'new', errors: [] });
  const es = new EventSource(q.get('server') + '/sse?channel=' + encodeURIComponent(q.get('channel')), { withCredentials: true });
  es.onopen = () => { s.state = 'connected'; };
  es.onerror = () => { s.state = es.readyState === 2 ? 'closed' : 'connecting'; };
  es.onmessage = (e) => { s.got.push(JSON.parse(e.data)[2]); };
</script>`;

const SDK = `<!doctype html><meta charset="utf-8"><script type="module">
  import { HeraldClient } from '/sdk/index.js';
  const q = new URLSearchParams(location.search);
  const s = (window.herald = { got: [], state: 'new', errors: [] });
  const client = new HeraldClient(q.get('server'), {
    channels: [q.get('channel')],
    transports: [q.get('transport')],
    withCredentials: true,
    minReconnectDelayMs: 100,
    maxReconnectDelayMs: 500,
  });
  client.on('message', (m) => s.got.push(m.data));
  client.on('state', (e) => { s.state = e.state; });
  client.on('error', (e) => s.errors.push(e.type + ': ' + (e.error && e.error.message)));
  client.connect();
</script>`;

/** The app: its login sets the cookie, its pages read Herald, and its /hook is Herald's auth hook. */
async function startApp(): Promise<{ origin: string; asked: Asked[]; close(): Promise<void> }> {
  const asked: Asked[] = [];
  const server = http.createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/login') {
        res.writeHead(200, { 'Set-Cookie': `sid=${SESSION}; Path=/; HttpOnly; SameSite=Lax`, 'Content-Type': 'text/html' });
        res.end('<p>logged in</p>');
        return;
      }
      if (url.pathname === '/plain.html' || url.pathname === '/sdk.html') {
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
        res.end(url.pathname === '/plain.html' ? PLAIN : SDK);
        return;
      }
      if (url.pathname === '/hook' && req.method === 'POST') {
        let body = '';
        for await (const c of req) body += String(c);
        const a = JSON.parse(body) as Asked;
        asked.push(a);
        const ok = a.cookies['sid'] === SESSION;
        res.writeHead(ok ? 200 : 403, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(ok ? { allow: true, user: 'alice', channels: ['room.*'] } : { reason: 'not logged in' }));
        return;
      }
      const rel = normalize(url.pathname.slice('/sdk/'.length));
      if (!url.pathname.startsWith('/sdk/') || rel.startsWith('..')) return void res.writeHead(404).end();
      try {
        const file = await readFile(join(CLIENT_DIST, rel));
        res.writeHead(200, { 'Content-Type': rel.endsWith('.js') ? 'text/javascript' : 'application/octet-stream' });
        res.end(file);
      } catch {
        res.writeHead(404).end();
      }
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    asked,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

let browser: Browser | undefined;
let app: Awaited<ReturnType<typeof startApp>>;
let herald: TestServer;
before(async () => {
  app = await startApp();
  herald = await startServer({
    dev: false,
    allowedOrigins: [app.origin],
    authHook: `${app.origin}/hook`,
    authHookCookies: ['sid'],
    // Every connection asks: each transport's own call is checked below.
    authHookCacheSeconds: 0,
  });
  if (!MISSING) browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await herald.close();
  await app.close();
});

interface PageState {
  got: string[];
  state: string;
  errors: string[];
}
const read = (page: Page): Promise<PageState> => page.evaluate(() => (globalThis as unknown as { herald: PageState }).herald);

/** Publish until the page has the message (it may still be connecting), within 15 s. */
async function publishUntilSeen(page: Page, channel: string): Promise<PageState> {
  const deadline = Date.now() + 15_000;
  let state = await read(page);
  while (!state.got.includes('hello') && Date.now() < deadline) {
    await publish(herald.url, { channel, data: 'hello' });
    await new Promise((r) => setTimeout(r, 200));
    state = await read(page);
  }
  return state;
}

const VARIANTS = [
  { name: 'a plain EventSource', path: 'plain.html', transport: undefined, wire: 'sse' },
  { name: 'the SDK over WebSocket', path: 'sdk.html', transport: 'websocket', wire: 'ws' },
  { name: 'the SDK over SSE', path: 'sdk.html', transport: 'sse', wire: 'sse' },
  { name: 'the SDK over long-polling', path: 'sdk.html', transport: 'poll', wire: 'poll' },
] as const;

for (const v of VARIANTS) {
  test(`${v.name} with the app's session cookie is let in by the auth hook`, { skip: MISSING }, async (t) => {
    const context = await (browser as Browser).newContext();
    t.after(() => context.close());
    const page = await context.newPage();
    await page.goto(`${app.origin}/login`);
    const channel = `room.${v.wire}.${v.path.replace('.html', '')}`;
    const before = app.asked.length;
    const q = new URLSearchParams({ server: herald.url, channel, ...(v.transport ? { transport: v.transport } : {}) });
    await page.goto(`${app.origin}/${v.path}?${q}`);
    const state = await publishUntilSeen(page, channel);
    assert.ok(state.got.includes('hello'), `${v.name} received nothing: ${JSON.stringify(state)}`);
    const mine = app.asked.slice(before).filter((a) => a.transport === v.wire);
    assert.ok(mine.length > 0, `the hook was asked over ${v.wire}: ${JSON.stringify(app.asked.slice(before))}`);
    assert.ok(mine.every((a) => a.cookies['sid'] === SESSION), 'the browser sent the cookie the app set');
  });

  test(`${v.name} without the login is denied by the auth hook`, { skip: MISSING }, async (t) => {
    const context = await (browser as Browser).newContext();
    t.after(() => context.close());
    const page = await context.newPage();
    const channel = `room.denied.${v.wire}.${v.path.replace('.html', '')}`;
    const before = app.asked.length;
    const q = new URLSearchParams({ server: herald.url, channel, ...(v.transport ? { transport: v.transport } : {}) });
    await page.goto(`${app.origin}/${v.path}?${q}`);
    const deadline = Date.now() + 10_000;
    while (!app.asked.slice(before).some((a) => a.transport === v.wire) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const mine = app.asked.slice(before).filter((a) => a.transport === v.wire);
    assert.ok(mine.length > 0, 'the hook was asked');
    assert.ok(mine.every((a) => a.cookies['sid'] === undefined), 'no cookie without the login');
    await publish(herald.url, { channel, data: 'hello' });
    await new Promise((r) => setTimeout(r, 500));
    const state = await read(page);
    assert.deepEqual(state.got, []);
    assert.notEqual(state.state, 'connected');
    if (v.path === 'plain.html') assert.equal(state.state, 'closed', 'EventSource gives up on 403');
  });
}
