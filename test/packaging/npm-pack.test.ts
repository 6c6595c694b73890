/**
 * The npm packages as a user gets them. `npm pack` makes the server's tarball and @herald/client's (whose prepack
 * builds its ESM and its browser bundle); both are installed into a clean temporary directory, the server globally
 * into a prefix (as the Dockerfile does), the client as an application's dependency. Then, with nothing of the
 * checkout involved: the installed `herald serve --dev` starts, a stream receives what the installed `herald publish`
 * sends, the installed client's ESM entry receives a message in Node, its browser bundle loaded by a plain `<script>`
 * tag receives one in headless Chromium, and every source map in both packages resolves to files inside the package.
 *
 * The packages' dependencies come from the npm registry (or npm's cache).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import type { Browser } from 'playwright-core';
import { chromiumAvailable, CHROMIUM_PATH, launchChromium } from '../browser/chromium.js';
import { cleanEnv, killAll, ROOT, servedUrl, spawnTracked, type RunningHerald } from '../helpers/cli.js';

const run = promisify(execFile);
const NO_CHROMIUM = chromiumAvailable() ? undefined : `no Chromium at ${CHROMIUM_PATH} (apt-get install chromium; .ci/run does)`;
if (NO_CHROMIUM && process.env['CI']) throw new Error(NO_CHROMIUM);

/** What `npm pack --json` says about one tarball. */
interface Packed {
  filename: string;
  files: { path: string }[];
}

/** npm without the variables an enclosing `npm test` sets (npm_config_*, npm_lifecycle_*), which would steer it. */
function npmEnv(): Record<string, string> {
  return Object.fromEntries(Object.entries(cleanEnv()).filter(([k]) => !k.toLowerCase().startsWith('npm_')));
}

async function npm(args: string[], cwd: string): Promise<string> {
  const { stdout } = await run('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd,
    env: npmEnv(),
    maxBuffer: 16 * 1024 * 1024,
    timeout: 120_000,
  });
  return stdout;
}

/** `npm pack --json` prints lifecycle scripts' output before the JSON: take the JSON array at the end. */
async function pack(args: string[], dest: string): Promise<Packed> {
  const out = await npm(['pack', '--json', '--pack-destination', dest, ...args], ROOT);
  const packed = JSON.parse(out.slice(out.indexOf('[\n'))) as Packed[];
  assert.equal(packed.length, 1, out);
  return packed[0]!;
}

/**
 * A compiled file of a checkout's dist/ whose TypeScript source is gone (moved or deleted since the last clean
 * build). `npm pack` proper never packs one of the server's (the root's prepack empties dist/ and builds afresh);
 * this test packs the dist/ it runs from, and must not blame the package for a developer's leftovers.
 * `checkout` is the package's folder in the checkout: the root (dist/src/a.js from src/a.ts) or client/ (dist/a.js
 * from src/a.ts).
 */
function leftover(rel: string, checkout: string): boolean {
  const m = /^dist\/(.+?)(\.js|\.js\.map|\.d\.ts)$/.exec(rel);
  if (!m?.[1] || m[1] === 'herald.min') return false;
  return !existsSync(join(checkout, `${m[1]}.ts`)) && !existsSync(join(checkout, 'src', `${m[1]}.ts`));
}

let work = '';
let server: Packed;
let client: Packed;
/** The installed packages' directories. */
let serverDir = '';
let clientDir = '';
let heraldBin = '';
let appDir = '';
let herald: RunningHerald | undefined;
let pages: http.Server | undefined;
let pageOrigin = '';
let browser: Browser | undefined;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'herald-pack-'));
  // The server's dist is what this very test run was compiled into; its pack runs no scripts (its prepare would
  // rebuild the checkout under the other tests' feet). The client's prepack builds its dist and bundle.
  server = await pack(['--ignore-scripts'], work);
  client = await pack(['--workspace', 'client'], work);
  const prefix = join(work, 'global');
  appDir = join(work, 'app');
  await mkdir(appDir);
  await writeFile(join(appDir, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  await Promise.all([
    npm(['install', '--global', '--prefix', prefix, '--omit=dev', '--ignore-scripts', '--prefer-offline', join(work, server.filename)], work),
    npm(['install', '--prefer-offline', '--ignore-scripts', join(work, client.filename)], appDir),
  ]);
  serverDir = join(prefix, 'lib', 'node_modules', 'herald');
  clientDir = join(appDir, 'node_modules', '@herald', 'client');
  heraldBin = join(prefix, 'bin', 'herald');

  // The page's own origin, so the bundle talks to Herald cross-origin as on a real site.
  pages = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html' }).end(BUNDLE_PAGE);
    } else if (path === '/herald.min.js' || path === '/herald.min.js.map') {
      res.writeHead(200, { 'Content-Type': 'text/javascript' }).end(readFileSync(join(clientDir, 'dist', path.slice(1))));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => pages!.listen(0, '127.0.0.1', r));
  pageOrigin = `http://127.0.0.1:${(pages.address() as AddressInfo).port}`;

  // The installed command, run from the temporary directory, not the checkout.
  herald = await servedUrl(spawnTracked(heraldBin, ['serve', '--dev', '--port', '0', '--allowed-origin', pageOrigin], cleanEnv(), work));
});

after(async () => {
  await browser?.close();
  await killAll();
  await new Promise((r) => (pages ? pages.close(r) : r(undefined)));
  if (work) await rm(work, { recursive: true, force: true });
});

/** The bundle from a plain script tag: it defines the global `Herald`; the page keeps what it receives. */
const BUNDLE_PAGE = `<!doctype html><meta charset="utf-8"><title>bundle</title>
<script src="/herald.min.js"></script>
<script>
  const q = new URLSearchParams(location.search);
  const s = (window.page = { got: [], connected: false, errors: [], kind: typeof Herald.HeraldClient });
  const c = new Herald.HeraldClient(q.get('server'), { channels: [q.get('channel')] });
  c.on('connected', () => { s.connected = true; });
  c.on('message', (m) => { s.got.push(m.data); });
  c.on('error', (e) => { s.errors.push(e.type + ': ' + e.error.message); });
  c.connect();
</script>`;

async function publishTo(url: string, channel: string, data: string): Promise<void> {
  const res = await fetch(`${url}/api/publish`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ channel, data }),
  });
  assert.equal(res.status, 200, await res.text());
}

test('the server package holds the runtime, its sources and the license, nothing of the tests or the build state', () => {
  const paths = server.files.map((f) => f.path);
  const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  assert.match(scripts['prepack'] ?? '', /rmSync\('dist'.*&& npm run build$/, 'npm pack must build from an empty dist/');
  for (const need of ['package.json', 'LICENSE', 'README.md', 'bin/herald.js', 'dist/src/index.js', 'dist/src/cli/main.js', 'deploy/herald.service']) {
    assert.ok(paths.includes(need), `${need} missing from ${server.filename}`);
  }
  const stray = paths.filter((p) => /(^|\/)test\/|\.test\.|tsbuildinfo|^client\/|^node_modules\//.test(p));
  assert.deepEqual(stray, [], 'test code or build state in the server package');
  // Whatever the server loads from src/ or dist/src at run time (a compiled module, or a static file such as a page's
  // HTML or CSS) must be in the package: every non-test file there is.
  const missing: string[] = [];
  for (const top of ['src', 'dist/src']) {
    for (const f of walk(join(ROOT, top))) {
      const rel = relative(ROOT, f).split(sep).join('/');
      if (!/\.test\./.test(rel) && !paths.includes(rel)) missing.push(rel);
    }
  }
  assert.deepEqual(missing, [], 'files of src/ or dist/src/ left out of the package ("files" in package.json)');
});

test('the client package holds the ESM entry, the browser bundle, their maps, sources and the license', () => {
  const paths = client.files.map((f) => f.path);
  for (const need of ['package.json', 'LICENSE', 'README.md', 'dist/index.js', 'dist/index.d.ts', 'dist/herald.min.js', 'dist/herald.min.js.map', 'src/index.ts']) {
    assert.ok(paths.includes(need), `${need} missing from ${client.filename}`);
  }
  assert.deepEqual(paths.filter((p) => /tsbuildinfo|\.test\.|node_modules\//.test(p)), []);
});

test('the installed `herald serve --dev` delivers what the installed `herald publish` sends', async () => {
  const url = herald!.url;
  const health = await fetch(`${url}/healthz`);
  assert.equal(health.status, 200);
  // The installed package reports the version it was packed as (package.json's), not a stale or built-in one.
  const healthBody = (await health.json()) as { version?: unknown };
  assert.equal(healthBody.version, (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
  const ac = new AbortController();
  const res = await fetch(`${url}/sub?channel=packed`, { signal: ac.signal });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  const published = await run(heraldBin, ['publish', 'packed', 'from the tarball', '--server', url], { cwd: work, env: cleanEnv() });
  assert.match(published.stdout, /^\{"id":/, published.stdout + published.stderr);
  let text = '';
  const deadline = Date.now() + 10_000;
  while (!text.includes('\n') || !text.includes('tarball')) {
    assert.ok(Date.now() < deadline, `no message on /sub: ${JSON.stringify(text)}`);
    const { value, done } = await reader.read();
    if (done) break;
    text += Buffer.from(value).toString('utf8');
  }
  ac.abort();
  assert.ok(text.split('\n').includes('["message","packed","from the tarball"]'), text);
});

test('the installed client package, imported by its name in Node, receives a message', async () => {
  // Node 20 has fetch but neither WebSocket nor EventSource as globals: the SDK long-polls.
  const script = `
    import { HeraldClient } from '@herald/client';
    const c = new HeraldClient(process.argv[1], { channels: ['node-app'], transports: ['poll'] });
    c.on('connected', async () => {
      const r = await fetch(process.argv[1] + '/api/publish', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ channel: 'node-app', data: 'to node' }) });
      if (r.status !== 200) { console.error('publish', r.status); process.exit(1); }
    });
    c.on('message', (m) => { console.log(JSON.stringify(m.data)); c.disconnect(); process.exit(0); });
    c.connect();
    setTimeout(() => { console.error('no message'); process.exit(1); }, 15000);
  `;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script, herald!.url], { cwd: appDir, env: cleanEnv(), timeout: 20_000 });
  assert.equal(stdout.trim(), '"to node"');
});

test('the browser bundle, loaded by a <script> tag, defines the global Herald and receives a message', { skip: NO_CHROMIUM }, async () => {
  browser = await launchChromium();
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${pageOrigin}/?server=${encodeURIComponent(herald!.url)}&channel=browser`);
  type State = { got: unknown[]; connected: boolean; errors: string[]; kind: string };
  const state = (): Promise<State> => page.evaluate(() => (globalThis as unknown as { page: State }).page);
  const until = async (check: (s: State) => boolean, what: string): Promise<State> => {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const s = await state().catch(() => undefined);
      if (s && check(s)) return s;
      assert.ok(Date.now() < deadline, `timed out waiting for ${what}: ${JSON.stringify(s)} ${errors.join('; ')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const connected = await until((s) => s.connected, 'the bundle to connect');
  assert.equal(connected.kind, 'function');
  await publishTo(herald!.url, 'browser', 'to the bundle');
  const s = await until((x) => x.got.length > 0, 'a message in the page');
  assert.deepEqual(s.got, ['to the bundle']);
  assert.deepEqual(errors, []);
});

test('every source map in both installed packages points at files inside its package', async () => {
  let maps = 0;
  for (const [pkg, checkout] of [[serverDir, ROOT], [clientDir, join(ROOT, 'client')]] as const) {
    for (const file of walk(pkg)) {
      const rel = relative(pkg, file).split(sep).join('/');
      if (rel.startsWith('node_modules/') || leftover(rel, checkout)) continue;
      if (file.endsWith('.js')) {
        // The comment that tells a browser or `node --enable-source-maps` where the map is.
        const m = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(await readFile(file, 'utf8'));
        if (m?.[1]) assert.ok(existsSync(resolve(dirname(file), m[1])), `${file}: its map ${m[1]} is not in the package`);
      }
      if (!file.endsWith('.map')) continue;
      maps++;
      const map = JSON.parse(await readFile(file, 'utf8')) as { sources: string[]; sourceRoot?: string };
      assert.ok(map.sources.length > 0, file);
      for (const source of map.sources) {
        const target = resolve(dirname(file), map.sourceRoot ?? '', source);
        assert.ok(target.startsWith(pkg + sep), `${relative(pkg, file)}: ${source} lies outside the package`);
        assert.ok(existsSync(target), `${relative(pkg, file)}: ${source} is not in the package`);
      }
    }
  }
  assert.ok(maps > 20, `only ${maps} source maps found`);
});

function walk(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out;
}
