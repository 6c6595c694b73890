/**
 * The admin dashboard (issue 9 §1) in headless Chromium: log in, live figures that follow real traffic and match
 * /metrics, a screenshot that shows them, the publish and disconnect buttons against real clients, the CSP with no
 * violation; then two nodes on one Redis, where each dashboard shows both nodes, disconnects a client held by the
 * other node, and drops a node that stopped.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { ADMIN_CSP } from '../../src/http/admin/routes.js';
import { parseSamples, valueOf } from '../helpers/metrics.js';
import { startRedis, type RedisProcess } from '../helpers/redis.js';
import { eventually, openStream, publish, startServer, type TestServer } from '../helpers/server.js';
import { openWs } from '../helpers/ws.js';
import { chromiumAvailable, CHROMIUM_PATH, launchChromium } from './chromium.js';

const ADMIN_SECRET = 'admin-secret-for-tests-0123456789';
const SHOTS = fileURLToPath(new URL('../../../dist/test-artifacts/', import.meta.url));
if (!chromiumAvailable()) throw new Error(`no Chromium at ${CHROMIUM_PATH} (apt-get install chromium; .ci/run does)`);

let browser: Browser;
const cleanup: (() => Promise<unknown> | unknown)[] = [];
before(async () => {
  browser = await launchChromium();
});
after(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
  await browser?.close();
});

interface AdminPage {
  page: Page;
  context: BrowserContext;
  /** Console messages and page errors seen so far. */
  problems: string[];
}

/** A fresh browser context at `url`/admin, logged in with `secret`. */
async function openAdmin(url: string, secret = ADMIN_SECRET): Promise<AdminPage> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  cleanup.push(() => context.close());
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  await page.goto(`${url}/admin`);
  await page.fill('#secret', secret);
  await Promise.all([page.waitForURL(`${url}/admin`), page.click('button[type=submit]')]);
  return { page, context, problems };
}

const text = (page: Page, selector: string): Promise<string> => page.locator(selector).first().innerText();

/** Waits until the page's figure at `selector` reads `want` (figures refresh once a second). */
async function untilFigure(page: Page, selector: string, want: string, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    last = await page.locator(selector).first().innerText().catch(() => '');
    if (last.trim() === want) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`${what}: page shows ${JSON.stringify(last)}, want ${JSON.stringify(want)}`);
}

/** Polls an element's text from the test side until it passes `ok`. Not page.waitForFunction with a string: that
 *  evaluates in the page, and the dashboard's CSP (no 'unsafe-eval') refuses it whenever the first check is false. */
async function untilText(page: Page, selector: string, ok: (text: string) => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    last = await page.locator(selector).first().innerText().catch(() => '');
    if (ok(last)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`${what}: page shows ${JSON.stringify(last)}`);
}

async function scrape(url: string): Promise<string> {
  const res = await fetch(`${url}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
}

/** Decode a PNG in the browser (a canvas) and describe its pixels: distinct colours, share of non-white pixels. */
async function pixels(context: BrowserContext, png: Buffer): Promise<{ colours: number; inked: number }> {
  const page = await context.newPage();
  try {
    // A string, so the browser's own globals (Image, document) need no DOM types in this Node-typed file.
    return await page.evaluate<{ colours: number; inked: number }>(`(async () => {
      const img = new Image();
      img.src = 'data:image/png;base64,${png.toString('base64')}';
      await img.decode();
      const canvas = document.createElement('canvas');
      canvas.width = img.width;
      canvas.height = img.height;
      const ctx = canvas.getContext('2d');
      ctx.drawImage(img, 0, 0);
      const d = ctx.getImageData(0, 0, img.width, img.height).data;
      const colours = new Set();
      let inked = 0;
      for (let i = 0; i < d.length; i += 4) {
        colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
        if (d[i] + d[i + 1] + d[i + 2] < 384) inked++;
      }
      return { colours: colours.size, inked: inked / (d.length / 4) };
    })()`);
  } finally {
    await page.close();
  }
}

test('one node: login, live figures matching /metrics, screenshot, publish and disconnect buttons, CSP', async () => {
  const node = await startServer({ adminSecret: ADMIN_SECRET, historySize: 10 });
  cleanup.push(() => node.close());
  const self = node.server.node.nodeId;

  // The login form: a wrong secret is refused and shows no dashboard.
  const context = await browser.newContext();
  cleanup.push(() => context.close());
  const login = await context.newPage();
  const first = await login.goto(`${node.url}/admin`);
  assert.equal(first?.headers()['content-security-policy'], ADMIN_CSP);
  await login.fill('#secret', 'not-the-admin-secret-at-all');
  const [refused] = await Promise.all([login.waitForResponse((r) => r.url().endsWith('/admin/login')), login.click('button[type=submit]')]);
  assert.equal(refused.status(), 401);
  assert.match(await text(login, '.problem'), /Wrong secret/);
  assert.equal(await login.locator('#sum-connections').count(), 0, 'no dashboard without the secret');
  assert.equal((await fetch(`${node.url}/admin/events`)).status, 401, 'no feed without the cookie');

  const admin = await openAdmin(node.url);
  const { page } = admin;
  await untilFigure(page, '#live', 'live', 'the event stream is open');
  await untilFigure(page, '#sum-nodes', '1', 'one node');
  await untilFigure(page, '#sum-connections', '0', 'no clients yet');

  // Real traffic: a /sub stream, an /sse stream and a WebSocket, then messages.
  const sub = await openStream(`${node.url}/sub?channel=adm-busy`);
  const sse = await openStream(`${node.url}/sse?channel=adm-busy`);
  const ws = await openWs(`${node.url}/ws?channel=adm-quiet`);
  cleanup.push(() => {
    sub.close();
    sse.close();
    ws.close();
  });
  await untilFigure(page, '#sum-connections', '3', 'three clients');
  const row = `#nodes tr[data-node="${self}"]`;
  assert.equal(await page.getAttribute(`${row} td[data-field=connections]`, 'data-conn-sub'), '1');
  assert.equal(await page.getAttribute(`${row} td[data-field=connections]`, 'data-conn-sse'), '1');
  assert.equal(await page.getAttribute(`${row} td[data-field=connections]`, 'data-conn-ws'), '1');
  await untilFigure(page, '#sum-channels', '2', 'two channels');
  // A burst spread over a few seconds, so one snapshot sees messages flowing.
  for (let i = 0; i < 12; i++) {
    assert.equal((await publish(node.url, { channel: 'adm-busy', data: `m${i}` })).status, 200);
    await new Promise((r) => setTimeout(r, 150));
  }
  await sub.waitLines(12);
  await untilText(page, '#sum-in', (t) => Number(t) > 0, 'messages in during the burst');
  await untilText(page, '#busiest tbody', (t) => t.includes('adm-busy'), 'the busy channel among the busiest');

  // Quiet now: every figure on the page must come to read what /metrics says.
  await untilFigure(page, '#sum-in', '0', 'no messages in after the burst');
  const metrics = await scrape(node.url);
  const want = {
    in: valueOf(metrics, 'herald_published_total'),
    out: valueOf(metrics, 'herald_hub_publications_total'),
    deliveries: valueOf(metrics, 'herald_delivered_total'),
    channels: valueOf(metrics, 'herald_hub_channels'),
    connections: valueOf(metrics, 'herald_open_sessions'),
    sub: valueOf(metrics, 'herald_open_sessions', { transport: 'sub' }),
    // The counter has no `slow` sample until the first slow client.
    slow: parseSamples(metrics).find((x) => x.name === 'herald_disconnects_total' && x.labels['reason'] === 'slow')?.value ?? 0,
  };
  assert.equal(want.in, 12);
  assert.equal(want.deliveries, 24, 'two subscribers of adm-busy');
  await untilFigure(page, `${row} td[data-field=in]`, `0 (${want.in})`, 'messages in, as /metrics');
  await untilFigure(page, `${row} td[data-field=out]`, `0 (${want.out})`, 'messages out, as /metrics');
  await untilFigure(page, `${row} td[data-field=deliveries]`, `0 (${want.deliveries})`, 'deliveries, as /metrics');
  await untilFigure(page, `${row} td[data-field=channels]`, String(want.channels), 'channels, as /metrics');
  await untilFigure(page, `${row} td[data-field=slow]`, String(want.slow), 'slow consumers, as /metrics');
  await untilFigure(page, '#sum-connections', String(want.connections), 'connections, as /metrics');
  assert.equal(await page.getAttribute(`${row} td[data-field=connections]`, 'data-conn-sub'), String(want.sub));
  assert.equal(valueOf(await scrape(node.url), 'herald_published_total'), want.in, 'nothing moved meanwhile');

  // The screenshot: not blank, and the key figures are on it.
  const shot = await page.screenshot({ fullPage: true });
  mkdirSync(SHOTS, { recursive: true });
  writeFileSync(`${SHOTS}admin-one-node.png`, shot);
  const whole = await pixels(admin.context, shot);
  assert.ok(whole.colours > 20 && whole.inked > 0.005, `the page is not blank: ${JSON.stringify(whole)}`);
  for (const id of ['#sum-connections', '#sum-channels', '#sum-in', '#sum-deliveries', `${row} td[data-field=deliveries]`]) {
    const figure = page.locator(id).first();
    assert.ok(await figure.isVisible(), `${id} visible`);
    const ink = await pixels(admin.context, await figure.screenshot());
    assert.ok(ink.inked > 0.01, `${id} is drawn on the screenshot: ${JSON.stringify(ink)}`);
  }

  // The channel view and its publish button: a real subscriber receives the test message.
  await page.fill('#channel-name', 'adm-busy');
  await page.click('#channel-form button');
  await page.waitForSelector('#subscribers tbody tr');
  assert.equal(await page.locator('#subscribers tbody tr').count(), 2);
  assert.match(await text(page, '#history-state'), /latest 10 message/);
  // Presence is on for every channel in --dev: both subscribers are members (anonymous: a user each).
  assert.match(await text(page, '#presence'), /^2 client\(s\), 2 user\(s\)/);
  assert.equal(await page.locator('#presence-members tbody tr').count(), 2);
  await page.fill('#publish-data', 'from the dashboard');
  await page.click('#publish-form button');
  const lines = await sub.waitLines(13);
  assert.equal(JSON.parse(lines[12]!)[2], 'from the dashboard');
  await untilText(page, '#publish-result', (t) => t.startsWith('published'), 'the publish result', 5000);

  // The disconnect button: that client's stream ends with the operator's reason, the other stays.
  const subId = node.server.node.sessionsOn('adm-busy').find((s) => s.options.transport === 'sub')!.id;
  await page.click(`#subscribers tr[data-client="${subId}"] button`);
  await sub.ended;
  assert.match(sub.lines.at(-1) ?? '', /"disconnected",3530/);
  await untilFigure(page, '#sum-connections', '2', 'one client fewer');
  assert.equal(node.server.node.sessionsOn('adm-busy').length, 1, 'the SSE client is still there');

  const csp = admin.problems.filter((p) => /Content Security Policy|Refused to/i.test(p));
  assert.deepEqual(csp, [], 'no CSP violations');
  assert.deepEqual(admin.problems, [], 'no console errors');
});

test('two nodes on one Redis: each dashboard shows both; disconnect reaches the other node; a stopped node expires', async () => {
  const redis: RedisProcess = await startRedis();
  cleanup.push(() => redis.stop());
  const start = async (): Promise<TestServer> => {
    const n = await startServer({ broker: redis.url, adminSecret: ADMIN_SECRET, historySize: 10 });
    cleanup.push(() => n.close());
    await eventually(() => n.server.node.isReady() && n.server.node.control.isSubscribed, 10_000, 'node ready on Redis');
    return n;
  };
  const a = await start();
  const b = await start();
  const idA = a.server.node.nodeId;
  const idB = b.server.node.nodeId;

  const admin = await openAdmin(a.url);
  const { page } = admin;
  await untilFigure(page, '#sum-nodes', '2', 'both nodes on A');
  await page.waitForSelector(`#nodes tr[data-node="${idB}"]`);

  // A client on B, seen from A's dashboard with the figures B's own /metrics gives.
  const onB = await openStream(`${b.url}/sub?channel=adm-two`);
  cleanup.push(() => onB.close());
  const rowB = `#nodes tr[data-node="${idB}"]`;
  await untilFigure(page, `${rowB} td[data-field=channels]`, '1', "B's channel on A's page");
  const metricsB = await scrape(b.url);
  assert.equal(await page.getAttribute(`${rowB} td[data-field=connections]`, 'data-conn-sub'), String(valueOf(metricsB, 'herald_open_sessions', { transport: 'sub' })));
  await untilFigure(page, `#nodes tr[data-node="${idA}"] td[data-field=channels]`, String(valueOf(await scrape(a.url), 'herald_hub_channels')), "A's channels");

  // The channel view lists B's client; A's publish button reaches it; A's disconnect button ends it on B.
  await page.fill('#channel-name', 'adm-two');
  await page.click('#channel-form button');
  const clientB = b.server.node.sessionsOn('adm-two')[0]!.id;
  await page.waitForSelector(`#subscribers tr[data-client="${clientB}"]`);
  assert.match(await text(page, `#subscribers tr[data-client="${clientB}"]`), new RegExp(idB));
  await page.fill('#publish-data', 'across nodes');
  await page.click('#publish-form button');
  const got = await onB.waitLines(1);
  assert.equal(JSON.parse(got[0]!)[2], 'across nodes');
  await page.waitForSelector(`#subscribers tr[data-client="${clientB}"]`);
  await page.click(`#subscribers tr[data-client="${clientB}"] button`);
  await onB.ended;
  assert.match(onB.lines.at(-1) ?? '', /"disconnected",3530/);
  // The client can see its stream end a moment before the node has let go of the session.
  await eventually(() => b.server.node.sessionCount() === 0, 2000, 'B holds no session after the disconnect');

  // B's own dashboard shows A too (the same secret logs in on both nodes).
  const adminB = await openAdmin(b.url);
  await untilFigure(adminB.page, '#sum-nodes', '2', 'both nodes on B');

  // B stops: A's page drops it once it stopped sharing.
  await b.close();
  await untilFigure(page, '#sum-nodes', '1', 'B expired from A', 15_000);
  assert.equal(await page.locator(rowB).count(), 0);
  await page.screenshot({ path: `${SHOTS}admin-two-nodes.png`, fullPage: true });
  assert.deepEqual([...admin.problems, ...adminB.problems].filter((p) => !/401|Unauthorized|ERR_/.test(p)), [], 'no console errors');
});
