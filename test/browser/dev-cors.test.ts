/**
 * CORS in --dev (issue 9 §4): a page on another origin reads a --dev node over EventSource and over /poll (the SDK's
 * poll transport), as its WebSocket already could, in headless Chromium. Outside --dev, with no allowedOrigins, the
 * same cross-origin requests get no Access-Control-Allow-Origin (the configured rules stay).
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { publish, startServer, type TestServer } from '../helpers/server.js';
import { chromiumAvailable, CHROMIUM_PATH, launchChromium } from './chromium.js';
import { startPageServer, type PageServer, type PageState } from './pages.js';

const CLIENT_DIST = fileURLToPath(new URL('../../../client/dist/', import.meta.url));
const MISSING = chromiumAvailable() ? undefined : `no Chromium at ${CHROMIUM_PATH} (apt-get install chromium; .ci/run does)`;
if (MISSING && process.env['CI']) throw new Error(MISSING);

let browser: Browser | undefined;
let pages: PageServer | undefined;
let dev: TestServer;
let prod: TestServer;
before(async () => {
  dev = await startServer({ dev: true, allowedOrigins: [] });
  prod = await startServer({ dev: false, allowedOrigins: [], defaultNamespace: { anonymous: true } });
  if (MISSING) return;
  pages = await startPageServer(CLIENT_DIST);
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await pages?.close();
  await dev.close();
  await prod.close();
});

const read = (page: Page): Promise<PageState> => page.evaluate(() => (globalThis as unknown as { herald: PageState }).herald);

for (const v of [
  { name: 'a plain EventSource', path: 'plain.html', transport: undefined },
  { name: 'the SDK over /poll', path: 'sdk.html', transport: 'poll' },
]) {
  test(`--dev: ${v.name} on another origin receives messages`, { skip: MISSING }, async (t) => {
    const page = await (browser as Browser).newPage();
    t.after(() => page.close());
    const channel = `cors-${v.transport ?? 'sse'}`;
    const q = new URLSearchParams({ server: dev.url, channel, ...(v.transport ? { transport: v.transport } : {}) });
    assert.notEqual(new URL(dev.url).origin, (pages as PageServer).origin, 'the page is on another origin');
    await page.goto(`${(pages as PageServer).origin}/${v.path}?${q}`);
    // Publish until the page is listening, then once more: what arrives proves the browser let the page read it.
    const deadline = Date.now() + 15_000;
    let state = await read(page);
    while (!state.got.includes('hello') && Date.now() < deadline) {
      await publish(dev.url, { channel, data: 'hello' });
      await new Promise((r) => setTimeout(r, 200));
      state = await read(page);
    }
    assert.ok(state.got.includes('hello'), `${v.name} received nothing across origins: ${JSON.stringify(state)}`);
  });
}

test('the Access-Control-Allow-Origin each node sends to another origin: * in --dev, none outside it', async () => {
  const origin = 'http://elsewhere.example';
  for (const path of ['sse', 'sub', 'poll']) {
    const ac = new AbortController();
    const devRes = await fetch(`${dev.url}/${path}?channel=c`, { headers: { Origin: origin }, signal: ac.signal });
    assert.equal(devRes.headers.get('access-control-allow-origin'), '*', path);
    assert.equal(devRes.headers.get('access-control-allow-credentials'), null, `${path}: never credentials with *`);
    ac.abort();
    const ac2 = new AbortController();
    const prodRes = await fetch(`${prod.url}/${path}?channel=c`, { headers: { Origin: origin }, signal: ac2.signal });
    assert.equal(prodRes.status, 200, path);
    assert.equal(prodRes.headers.get('access-control-allow-origin'), null, path);
    ac2.abort();
  }
  const preflight = await fetch(`${dev.url}/sse?channel=c`, {
    method: 'OPTIONS',
    headers: { Origin: origin, 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'last-event-id' },
  });
  assert.equal(preflight.headers.get('access-control-allow-origin'), '*');
  // Keyless publishing in --dev keeps its own rule: a page of another site is still refused.
  const cross = await fetch(`${dev.url}/api/publish`, { method: 'POST', headers: { Origin: origin }, body: '{"channel":"c","data":"x"}' });
  assert.equal(cross.status, 403);
});
