/**
 * Chromium's own EventSource through a Redis outage (issue 12 §1): a plain page (no SDK) whose connection is cut
 * while Redis is down reconnects on its own, is told `broker_unavailable` in a 200 stream (a non-200 answer would
 * end it for good: the EventSource spec's "fail the connection"), keeps retrying, and is back with every message,
 * once and in order, within 3 s of Redis' return.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { CuttableProxy } from '../helpers/cuttable-proxy.js';
import { startNodeOnRedis, startRedis } from '../helpers/redis.js';
import { eventually, publish } from '../helpers/server.js';
import { chromiumAvailable, CHROMIUM_PATH, launchChromium } from './chromium.js';
import { startPageServer, type PageServer, type PageState } from './pages.js';

const CLIENT_DIST = fileURLToPath(new URL('../../../client/dist/', import.meta.url));
const MISSING = chromiumAvailable() ? undefined : `no Chromium at ${CHROMIUM_PATH} (apt-get install chromium; .ci/run does)`;
// In CI a missing browser is a failure, never a skip.
if (MISSING && process.env['CI']) throw new Error(MISSING);

let browser: Browser | undefined;
let pages: PageServer | undefined;
const cleanup: (() => unknown)[] = [];
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

const read = (page: Page): Promise<PageState> => page.evaluate(() => (globalThis as unknown as { herald: PageState }).herald);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(page: Page, check: (s: PageState) => boolean, what: string, timeoutMs = 15_000): Promise<PageState> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await read(page).catch(() => undefined);
    if (s && check(s)) return s;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; page: ${JSON.stringify(s)}`);
    await sleep(25);
  }
}

test('plain EventSource in Chromium: cut off during a Redis outage, it never gives up and is back within 3 s of the return', { skip: MISSING }, async (t) => {
  const redis = await startRedis();
  cleanup.push(() => redis.stop());
  const node = await startNodeOnRedis(redis.url, {
    historySize: 100,
    brokerWaitMs: 1500,
    redisTimeoutMs: 500,
    redisProbeIntervalMs: 100,
    allowedOrigins: [(pages as PageServer).origin],
  });
  cleanup.push(() => node.close());
  const proxy = await CuttableProxy.start(node.url);
  cleanup.push(() => proxy.close());
  const page = await (browser as Browser).newPage();
  cleanup.push(() => page.close());
  await page.goto(`${(pages as PageServer).origin}/plain.html?${new URLSearchParams({ server: proxy.url, channel: 'outage' })}`);
  await until(page, (s) => s.state === 'connected', 'the page to connect');

  const want: string[] = [];
  const send = async (data: string): Promise<void> => {
    assert.equal((await publish(node.url, { channel: 'outage', data })).status, 200);
    want.push(data);
  };
  for (let i = 0; i < 5; i++) await send(`before ${i}`);
  await until(page, (s) => s.got.length === 5, 'live messages');

  await redis.kill();
  await eventually(() => !node.server.node.isReady(), 5000, 'the node to see Redis gone');
  proxy.cut();
  // EventSource reconnects after its retry (2 s), is held 1.5 s, told broker_unavailable, retries within 1.5 s...
  await until(page, (s) => s.errors.includes('disconnect: broker_unavailable'), 'the page to be told broker_unavailable', 10_000);
  await sleep(2000);
  const during = await read(page);
  assert.notEqual(during.state, 'disconnected', 'the EventSource did not give up');

  await redis.restart();
  const returned = Date.now();
  await eventually(() => node.server.node.isReady(), 8000, 'the node ready again');
  for (let i = 0; i < 5; i++) await send(`after ${i}`);
  const back = await until(page, (s) => s.got.includes('after 0'), 'a message published after the return', 10_000);
  const backMs = Date.now() - returned;
  const s = await until(page, (st) => st.got.length >= want.length, 'every message');
  assert.notEqual(back.state, 'disconnected');
  assert.deepEqual(s.got, want, 'every message once, in order');
  assert.equal(new Set(s.ids).size, s.ids.length, 'no id twice');
  t.diagnostic(
    `Chromium EventSource: ${s.opens} opens, told broker_unavailable ${s.errors.filter((e) => e === 'disconnect: broker_unavailable').length} times, ` +
      `${s.missed} reload(s) (Redis restarted empty: new epoch), back ${backMs} ms after Redis' return`,
  );
  assert.ok(backMs <= 3000, `back within 3 s of Redis' return (${backMs} ms)`);
});
