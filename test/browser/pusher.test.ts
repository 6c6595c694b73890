/**
 * pusher-js (its browser build) and Laravel Echo over pusher-js in headless Chromium (issue 11), on pages of their own
 * origin whose backend (a node:http server here, as a Laravel app would be) signs private and presence subscriptions
 * with the `pusher` server library at `/broadcasting/auth`. Public events from a backend trigger and from a Herald
 * publish, Echo's `listen`, presence `here` / `joining` / `leaving` between two pages, and whispers (client events).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { publish, startServer, type TestServer } from '../helpers/server.js';
import { DEV_APP, serverLib } from '../helpers/pusher.js';
import { chromiumAvailable, CHROMIUM_PATH, launchChromium } from './chromium.js';

const MISSING = chromiumAvailable() ? undefined : `no Chromium at ${CHROMIUM_PATH} (apt-get install chromium; .ci/run does)`;
if (MISSING && process.env['CI']) throw new Error(MISSING);
const MODULES = fileURLToPath(new URL('../../../node_modules/', import.meta.url));

const PUSHER_PAGE = `<!doctype html><meta charset="utf-8"><title>pusher-js</title>
<script src="/pusher.js"></script>
<script>
  const q = new URLSearchParams(location.search);
  const s = (window.state = { got: [], state: 'new' });
  const pusher = new Pusher('app-key', { wsHost: '127.0.0.1', wsPort: Number(q.get('port')), forceTLS: false,
    enabledTransports: ['ws'], cluster: 'mt1', disableStats: true });
  pusher.connection.bind('state_change', (c) => { s.state = c.current; });
  const ch = pusher.subscribe('news');
  ch.bind('pusher:subscription_succeeded', () => { s.subscribed = true; });
  ch.bind_global((event, data) => { if (!event.startsWith('pusher:')) s.got.push({ event, data }); });
</script>`;

const ECHO_PAGE = `<!doctype html><meta charset="utf-8"><title>echo</title>
<script src="/pusher.js"></script>
<script src="/echo.js"></script>
<script>
  const q = new URLSearchParams(location.search);
  const s = (window.state = { shipped: [], here: null, joining: [], leaving: [], whispers: [], errors: [] });
  window.Pusher = Pusher;
  const echo = (window.echo = new Echo.default({
    broadcaster: 'pusher', key: 'app-key', wsHost: '127.0.0.1', wsPort: Number(q.get('port')), forceTLS: false,
    enabledTransports: ['ws'], cluster: 'mt1', disableStats: true,
    authEndpoint: '/broadcasting/auth', auth: { params: { user: q.get('user') } },
  }));
  echo.channel('orders').listen('OrderShipped', (e) => s.shipped.push(e));
  echo.join('lobby')
    .here((users) => { s.here = users.map((u) => u.name).sort(); })
    .joining((u) => s.joining.push(u.name))
    .leaving((u) => s.leaving.push(u.name))
    .error((e) => s.errors.push(JSON.stringify(e)));
  echo.private('chat').listenForWhisper('typing', (e) => s.whispers.push(e))
    .subscribed(() => { s.chat = true; });
</script>`;

let browser: Browser | undefined;
let herald: TestServer;
let pages: http.Server;
let origin = '';
before(async () => {
  herald = await startServer();
  if (MISSING) return;
  const lib = serverLib(herald.url);
  const pusherJs = await readFile(`${MODULES}pusher-js/dist/web/pusher.js`);
  const echoJs = await readFile(`${MODULES}laravel-echo/dist/echo.iife.js`);
  pages = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (type: string, body: string | Buffer, status = 200): void => {
      res.writeHead(status, { 'Content-Type': type });
      res.end(body);
    };
    if (path === '/pusher.js') return send('text/javascript', pusherJs);
    if (path === '/echo.js') return send('text/javascript', echoJs);
    if (path === '/pusher.html') return send('text/html', PUSHER_PAGE);
    if (path === '/echo.html') return send('text/html', ECHO_PAGE);
    if (path === '/broadcasting/auth' && req.method === 'POST') {
      // The app's auth endpoint, as Laravel's: it decides who the user is and signs with the app secret.
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const f = new URLSearchParams(body);
        const user = f.get('user') ?? 'nobody';
        const channel = f.get('channel_name') ?? '';
        const auth = lib.authorizeChannel(f.get('socket_id') ?? '', channel, channel.startsWith('presence-') ? { user_id: user, user_info: { name: user } } : undefined);
        send('application/json', JSON.stringify(auth));
      });
      return;
    }
    send('text/plain', 'not found', 404);
  });
  await new Promise<void>((r) => pages.listen(0, '127.0.0.1', r));
  // "localhost" is another origin than 127.0.0.1, where Herald listens: every request to Herald is cross-origin.
  origin = `http://localhost:${(pages.address() as AddressInfo).port}`;
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  pages?.closeAllConnections();
  await new Promise((r) => (pages ? pages.close(r) : r(undefined)));
  await herald.close();
});

const port = (): string => new URL(herald.url).port;
type State = Record<string, unknown>;
const read = (page: Page): Promise<State> => page.evaluate(() => (globalThis as unknown as { state: State }).state);

async function until(page: Page, check: (s: State) => boolean, what: string, timeoutMs = 10_000): Promise<State> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await read(page);
    if (check(s)) return s;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('pusher-js in Chromium: a backend trigger and a Herald publish both reach the page', { skip: MISSING }, async (t) => {
  const page = await (browser as Browser).newPage();
  t.after(() => page.close());
  await page.goto(`${origin}/pusher.html?port=${port()}`);
  await until(page, (s) => s['subscribed'] === true, 'subscribed');
  await serverLib(herald.url).trigger('news', 'headline', { text: 'hello' });
  await publish(herald.url, { channel: 'news', data: 'from herald' });
  const s = await until(page, (x) => (x['got'] as unknown[]).length >= 2, 'two events');
  assert.deepEqual(s['got'], [
    { event: 'headline', data: { text: 'hello' } },
    { event: 'message', data: 'from herald' },
  ]);
});

test('Laravel Echo over pusher-js in Chromium: listen, presence here/joining/leaving, whispers', { skip: MISSING }, async (t) => {
  const ann = await (browser as Browser).newPage();
  t.after(() => ann.close());
  await ann.goto(`${origin}/echo.html?port=${port()}&user=ann`);
  await until(ann, (s) => Array.isArray(s['here']) && s['chat'] === true, 'ann in the lobby and the chat');
  assert.deepEqual((await read(ann))['here'], ['ann']);
  const bob = await (browser as Browser).newPage();
  await bob.goto(`${origin}/echo.html?port=${port()}&user=bob`);
  const b = await until(bob, (s) => Array.isArray(s['here']) && s['chat'] === true, 'bob in the lobby and the chat');
  assert.deepEqual(b['here'], ['ann', 'bob']);
  await until(ann, (s) => (s['joining'] as string[]).includes('bob'), 'ann sees bob join');
  // A Laravel event: broadcastAs defaults to the class name under App\\Events.
  await serverLib(herald.url).trigger('orders', 'App\\Events\\OrderShipped', { order: 7 });
  await until(ann, (s) => (s['shipped'] as unknown[]).length === 1, 'OrderShipped at ann');
  assert.deepEqual((await read(bob))['shipped'], [{ order: 7 }]);
  // A whisper from bob reaches ann and not bob.
  await bob.evaluate(() => (globalThis as unknown as { echo: { private(c: string): { whisper(e: string, d: unknown): void } } }).echo.private('chat').whisper('typing', { who: 'bob' }));
  await until(ann, (s) => (s['whispers'] as unknown[]).length === 1, 'the whisper at ann');
  assert.deepEqual((await read(ann))['whispers'], [{ who: 'bob' }]);
  assert.deepEqual((await read(bob))['whispers'], [], 'never echoed to the sender');
  await bob.close();
  await until(ann, (s) => (s['leaving'] as string[]).includes('bob'), 'ann sees bob leave');
  assert.deepEqual((await read(ann))['errors'], []);
  assert.equal(DEV_APP.key, 'app-key');
});
