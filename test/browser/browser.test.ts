/**
 * Real browsers (headless Chromium): a page using the SDK and a page using a plain EventSource receive messages,
 * survive a node restart (the node stopped, a new one started on the same port), and resume without loss; and
 * 1,000 messages published while the page's connection is cut and held off arrive exactly once, in order.
 *
 * Between the page and the node sits a TCP proxy that can cut connections and refuse new ones, so "published while
 * the page was away" is certain rather than a race. The nodes run on a real Redis (a redis-server the test starts on
 * a free port), which keeps the history across the node's restart, as in a deployment.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { RedisBroker } from '../../src/broker/redis.js';
import { createLogger } from '../../src/util/log.js';
import { CuttableProxy } from '../helpers/cuttable-proxy.js';
import { startRedis, type RedisProcess } from '../helpers/redis.js';
import { eventually, publish, startServer, type TestServer } from '../helpers/server.js';
import { chromiumAvailable, CHROMIUM_PATH, launchChromium } from './chromium.js';
import { startPageServer, type PageServer, type PageState } from './pages.js';

const CLIENT_DIST = fileURLToPath(new URL('../../../client/dist/', import.meta.url));
const MISSING = chromiumAvailable()
  ? undefined
  : `no Chromium at ${CHROMIUM_PATH} (apt-get install chromium; .ci/run does)`;
// In CI a missing browser is a failure, never a skip.
if (MISSING && process.env['CI']) throw new Error(MISSING);

let browser: Browser | undefined;
let pages: PageServer | undefined;
const cleanup: (() => Promise<unknown> | unknown)[] = [];

before(async () => {
  if (MISSING) return;
  pages = await startPageServer(CLIENT_DIST);
  browser = await launchChromium();
});
after(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
  await browser?.close();
  await pages?.close();
});

/**
 * A node on `redis`, with the broker instance at hand so the test can publish a burst straight into Redis (as a
 * backend using Herald's library would) without paying an HTTP round trip per message.
 */
async function nodeOn(redis: RedisProcess, port = 0): Promise<{ herald: TestServer; broker: RedisBroker }> {
  const origin = pages?.origin ?? '';
  const broker = new RedisBroker({ url: redis.url, timeoutMs: 2000, probeIntervalMs: 1000, log: createLogger('silent') });
  const herald = await startServer({ port, broker: redis.url, historySize: 5000, allowedOrigins: [origin] }, { broker });
  cleanup.push(() => herald.close());
  await eventually(() => herald.server.node.isReady(), 10_000, 'node ready on Redis');
  return { herald, broker };
}

// Runs in the page: `globalThis` is its window.
const read = (page: Page): Promise<PageState> => page.evaluate(() => (globalThis as unknown as { herald: PageState }).herald);

async function until(page: Page, check: (s: PageState) => boolean, what: string, timeoutMs = 15_000): Promise<PageState> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await read(page).catch(() => undefined);
    if (s && check(s)) return s;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; page: ${JSON.stringify(s && { ...s, got: s.got.length, ids: s.ids.length })}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function publishAll(n: TestServer, channel: string, data: string[]): Promise<void> {
  for (const d of data) {
    const res = await publish(n.url, { channel, data: d });
    assert.equal(res.status, 200);
  }
}

/** The history policy the node applies to API publishes with historySize 5000 and the default TTLs. */
const POLICY = { size: 5000, ttlMs: 120_000, metaTtlMs: 3_600_000 };

const range = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix} ${i}`);

const VARIANTS = [
  { name: 'SDK over WebSocket', path: 'sdk.html', transport: 'websocket' },
  { name: 'SDK over SSE', path: 'sdk.html', transport: 'sse' },
  { name: 'SDK over long-polling', path: 'sdk.html', transport: 'poll' },
  { name: 'plain EventSource', path: 'plain.html', transport: 'sse' },
] as const;

for (const v of VARIANTS) {
  test(`${v.name}: receives, survives a node restart, and 1,000 messages sent while cut off arrive once, in order`, { skip: MISSING }, async (t) => {
    const redis = await startRedis();
    cleanup.push(() => redis.stop());
    let { herald, broker } = await nodeOn(redis);
    const port = Number(new URL(herald.url).port);
    const proxy = await CuttableProxy.start(herald.url);
    cleanup.push(() => proxy.close());
    const channel = `browser.${v.transport}.${v.path.replace('.html', '')}`;
    const page = await (browser as Browser).newPage();
    cleanup.push(() => page.close());
    const q = new URLSearchParams({ server: proxy.url, channel, transport: v.transport });
    await page.goto(`${(pages as PageServer).origin}/${v.path}?${q}`);
    await until(page, (s) => s.state === 'connected', 'the page to connect');

    const want: string[] = [];
    const send = async (data: string[]): Promise<void> => {
      await publishAll(herald, channel, data);
      want.push(...data);
    };

    // 1. Live messages.
    await send(range('live', 5));
    await until(page, (s) => s.got.length === want.length, 'live messages');

    // 2. The node restarts on the same port; messages are published while the page cannot reach it.
    proxy.block();
    await herald.close();
    await until(page, (s) => s.state !== 'connected', 'the page to notice the node is gone');
    ({ herald, broker } = await nodeOn(redis, port));
    await send(range('restarted', 5));
    proxy.unblock();
    await until(page, (s) => s.got.length >= want.length, 'messages published during the restart');

    // 3. The connection is cut (the node stays up); 1,000 messages are published while the page is away.
    proxy.block();
    proxy.cut();
    await until(page, (s) => s.state !== 'connected', 'the page to notice the cut');
    // The burst goes straight into Redis through the node's broker, with the policy the node gives API publishes:
    // through HTTP on this shared 2-core machine it would take several seconds on its own.
    const started = Date.now();
    for (const d of range('cut', 1000)) await broker.publish(channel, d, { history: POLICY });
    want.push(...range('cut', 1000));
    const published = Date.now() - started;
    proxy.unblock();
    const s = await until(page, (st) => st.got.length >= want.length, '1,000 messages after the cut', 20_000);
    const caughtUp = Date.now() - started - published;
    await new Promise((r) => setTimeout(r, 200));
    const final = await read(page);

    assert.deepEqual(final.got, want, 'every message once, in order');
    assert.equal(new Set(final.ids).size, final.ids.length, 'no id twice');
    assert.equal(final.missed, 0, 'nothing reported missed');
    assert.ok(s.opens >= 3, `reconnected twice (opens: ${s.opens})`);
    if (v.path === 'sdk.html') assert.ok(final.transports.every((t) => t === v.transport), final.transports.join());
    t.diagnostic(`${v.name}: 1,000 published in ${published} ms; caught up ${caughtUp} ms after the publisher finished`);
  });
}

test('SDK with its default order behind a proxy that breaks WebSockets: falls back to SSE and gets everything', { skip: MISSING }, async () => {
  const herald = await startServer({ allowedOrigins: [(pages as PageServer).origin] });
  cleanup.push(() => herald.close());
  const proxy = await CuttableProxy.start(herald.url);
  cleanup.push(() => proxy.close());
  proxy.refuseWebSockets = true;
  const page = await (browser as Browser).newPage();
  cleanup.push(() => page.close());
  const channel = 'browser.fallback';
  await page.goto(`${(pages as PageServer).origin}/sdk.html?${new URLSearchParams({ server: proxy.url, channel })}`);
  const s0 = await until(page, (s) => s.state === 'connected', 'the page to connect');
  assert.deepEqual(s0.transports, ['sse']);
  assert.ok(s0.errors.some((e) => e.startsWith('transport: ')), `the WebSocket failure was reported: ${s0.errors.join()}`);
  await publishAll(herald, channel, range('m', 20));
  const s = await until(page, (st) => st.got.length === 20, 'messages over SSE');
  assert.deepEqual(s.got, range('m', 20));
});
