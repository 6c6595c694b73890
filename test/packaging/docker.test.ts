/**
 * The Dockerfile and deploy/compose.yaml, where no Docker daemon runs and no base image can be pulled (as here): their
 * parts are tested instead. The image's content is the npm tarball installed globally with production dependencies
 * (test/packaging/npm-pack.test.ts installs and runs that very tarball, with the Dockerfile's flags); this file checks
 * the Dockerfile's shape (official node:20-slim in both stages, non-root user, SIGTERM, the exposed port, the
 * health check), that its build context (after .dockerignore) holds everything it copies and builds from, and runs
 * its HEALTHCHECK command against a live node and a dead port.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { cleanEnv, killAll, ROOT, startHerald } from '../helpers/cli.js';
import { freePort } from '../helpers/redis.js';

const run = promisify(execFile);

interface Instruction {
  op: string;
  args: string;
}

/** The Dockerfile's instructions: continuation lines joined, comments and the parser directive dropped. */
function instructions(): Instruction[] {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').replace(/\\\n\s*/g, ' ');
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('#'))
    .map((l) => {
      const [op = '', ...rest] = l.split(/\s+/);
      return { op: op.toUpperCase(), args: rest.join(' ') };
    });
}

/** The instructions of each stage (a FROM starts one). */
function stages(): Instruction[][] {
  const out: Instruction[][] = [];
  for (const i of instructions()) {
    if (i.op === 'FROM') out.push([]);
    out.at(-1)?.push(i);
  }
  return out;
}

after(killAll);

test('both stages are the official node:20-slim; the runtime one runs as a non-root user, stops on SIGTERM, checks its health', () => {
  const [build, runtime, ...more] = stages();
  assert.equal(more.length, 0, 'two stages');
  assert.equal(build![0]!.args, 'node:20-slim AS build');
  assert.equal(runtime![0]!.args, 'node:20-slim');
  const last = (op: string): string | undefined => runtime!.filter((i) => i.op === op).at(-1)?.args;
  const user = last('USER');
  assert.ok(user && !/^(root|0)(:|$)/.test(user), `USER ${user}`);
  assert.equal(last('STOPSIGNAL'), 'SIGTERM');
  assert.match(last('HEALTHCHECK') ?? '', /^--interval=\S+ --timeout=\S+ .*CMD \[/);
  assert.equal(last('ENTRYPOINT'), '["herald"]');
  // The port it listens on (HERALD_PORT, all interfaces) is the one exposed.
  const env = runtime!.filter((i) => i.op === 'ENV').map((i) => i.args).join(' ');
  assert.match(env, /HERALD_HOST=0\.0\.0\.0/);
  assert.equal(last('EXPOSE'), /HERALD_PORT=(\d+)/.exec(env)?.[1]);
  // Production dependencies only, from the packed tarball, installed as the packaging test installs it.
  const install = runtime!.find((i) => i.op === 'RUN' && i.args.includes('npm install'))?.args ?? '';
  assert.match(install, /npm install --global --omit=dev --ignore-scripts .*\/tmp\/herald-\*\.tgz/);
  const copied = runtime!.filter((i) => i.op === 'COPY').map((i) => i.args);
  assert.deepEqual(copied, ['--from=build /pkg/herald-*.tgz /tmp/'], 'the runtime stage takes nothing but the tarball');
  // The build stage builds and packs with the package's own scripts (prepack: an empty dist/, then the build).
  assert.ok(build!.some((i) => i.op === 'RUN' && /npm ci .*--ignore-scripts/.test(i.args)));
  assert.ok(build!.some((i) => i.op === 'RUN' && /npm pack --pack-destination \/pkg/.test(i.args)));
});

/** A .dockerignore pattern as Docker reads it: `**` any folders, `*` and `?` within one path segment. */
function globRegExp(pattern: string): RegExp {
  const body = pattern
    .split(/(\*\*\/?|\*|\?)/)
    .map((part) => {
      if (part.startsWith('**')) return '(?:.*/)?';
      if (part === '*') return '[^/]*';
      if (part === '?') return '[^/]';
      return part.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    })
    .join('');
  return new RegExp(`^${body}$`);
}

/** Files of the checkout that `docker build .` sends, under .dockerignore (patterns from the context's root). */
function buildContext(): string[] {
  const patterns = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => globRegExp(l.replace(/^\//, '')));
  // A path is out when it or a folder above it matches a pattern (as Docker's matcher does).
  const ignored = (rel: string): boolean => {
    const parts = rel.split('/');
    return parts.some((_, i) => patterns.some((p) => p.test(parts.slice(0, i + 1).join('/'))));
  };
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      const rel = relative(ROOT, full).split(sep).join('/');
      if (ignored(rel)) continue;
      if (statSync(full).isDirectory()) walk(full);
      else out.push(rel);
    }
  };
  walk(ROOT);
  return out;
}

test('the build context holds the manifests and sources the build stage needs, and no build output', () => {
  const context = buildContext();
  const need = ['package.json', 'package-lock.json', 'client/package.json', 'tsconfig.json', 'client/tsconfig.json', 'bin/herald.js', 'src/index.ts', 'client/src/index.ts', 'LICENSE', 'README.md', 'deploy/herald.service'];
  assert.deepEqual(need.filter((f) => !context.includes(f)), [], 'missing from the build context');
  // Everything npm pack takes from the sources (package.json "files", the TypeScript the build compiles) is there.
  for (const dir of ['src', 'bench', 'client/src']) {
    const files = readdirSync(join(ROOT, dir), { recursive: true }).map((f) => `${dir}/${String(f).split(sep).join('/')}`);
    const absent = files.filter((f) => statSync(join(ROOT, f)).isFile() && !context.includes(f));
    assert.deepEqual(absent, [], `${dir}/ files left out of the build context`);
  }
  const output = context.filter((f) => /(^|\/)(node_modules|dist)\/|\.tgz$|^\.git\//.test(f));
  assert.deepEqual(output, [], 'build output or VCS data in the build context');
  // The files the Dockerfile copies by name exist.
  for (const i of instructions().filter((x) => x.op === 'COPY' && !x.args.startsWith('--from'))) {
    for (const src of i.args.split(/\s+/).slice(0, -1)) {
      if (src !== '.') assert.ok(existsSync(join(ROOT, src)), `COPY ${src}: not in the checkout`);
    }
  }
});

test('the HEALTHCHECK command passes against a live node and fails against a port where none listens', async () => {
  const hc = instructions().find((i) => i.op === 'HEALTHCHECK')?.args ?? '';
  const argv = JSON.parse(hc.slice(hc.indexOf('CMD ') + 4)) as string[];
  assert.equal(argv[0], 'node');
  const node = await startHerald(['--dev', '--port', '0']);
  const port = new URL(node.url).port;
  const alive = await run(process.execPath, argv.slice(1), { env: cleanEnv({ HERALD_PORT: port }), timeout: 10_000 }).then(
    () => 0,
    (e: { code?: number }) => e.code ?? -1,
  );
  assert.equal(alive, 0, 'healthy node judged unhealthy');
  const dead = await run(process.execPath, argv.slice(1), { env: cleanEnv({ HERALD_PORT: String(await freePort()) }), timeout: 10_000 }).then(
    () => 0,
    (e: { code?: number }) => e.code ?? -1,
  );
  assert.equal(dead, 1, 'a port with no node judged healthy');
});

test('deploy/compose.yaml: two Herald nodes from this Dockerfile on one Redis behind nginx with deploy/nginx/herald.conf', () => {
  // No YAML parser among the dependencies: the lines that make the topology, checked as text.
  const compose = readFileSync(join(ROOT, 'deploy', 'compose.yaml'), 'utf8');
  const section = /^services:\n([\s\S]*?)^\S/m.exec(compose)?.[1] ?? '';
  const services = [...section.matchAll(/^ {2}([a-z0-9]+):/gm)].map((m) => m[1]);
  assert.deepEqual(services, ['redis', 'herald1', 'herald2', 'nginx']);
  assert.match(compose, /^ {2}herald1: \*herald$/m);
  assert.match(compose, /^ {2}herald2: \*herald$/m);
  assert.match(compose, /^ {2}build:\n {4}context: \.\.$/m, 'built from the checkout (the Dockerfile at its root)');
  assert.match(compose, /REDIS_URL: redis:\/\/redis:6379/);
  assert.match(compose, /- \.\/nginx\/herald\.conf:\/etc\/nginx\/conf\.d\/default\.conf:ro/);
  assert.ok(existsSync(join(ROOT, 'deploy', 'nginx', 'herald.conf')));
  // nginx's fixed address is the nodes' trusted proxy; the nodes get longer than a drain to stop.
  const nginxIp = /ipv4_address: (\S+)/.exec(compose)?.[1];
  assert.match(compose, new RegExp(`HERALD_TRUSTED_PROXIES: ${nginxIp?.replace(/\./g, '\\.')}$`, 'm'));
  assert.match(compose, /stop_grace_period: 30s/);
  assert.match(compose, /HERALD_SECRET: \$\{HERALD_SECRET:\?/, 'no default secret: compose refuses to start without one');
});
