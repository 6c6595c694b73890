/**
 * Test helpers: real redis-server processes on free ports, started and stopped by the tests themselves.
 *
 * Every process started here is remembered and killed when the test process exits, even when a test fails or the
 * runner is interrupted, so nothing is left running. Never the machine's own Redis on 6379.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HeraldConfig } from '../../src/config.js';
import { eventually, startServer, type TestServer } from './server.js';

const live = new Set<ChildProcess>();
const dirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const killAll = (): void => {
    for (const p of live) {
      try {
        p.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  };
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      killAll();
      process.exit(130);
    });
  }
}

/** A free TCP port on 127.0.0.1 (bind to port 0, read it, release it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Free ports that are also free at port + 10000 (Redis Cluster's bus port). */
async function freeClusterPort(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port + 10000 > 65535) continue;
    if (await isFree(port + 10000)) return port;
  }
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

export interface RedisProcess {
  readonly port: number;
  readonly url: string;
  /** Is the process running now. */
  readonly running: boolean;
  /** SIGKILL the server (a crash: no goodbye to clients). Resolves once it exited. */
  kill(): Promise<void>;
  /** Start it again on the same port (after kill). Resolves once it answers PING. */
  restart(): Promise<void>;
  /** SIGSTOP the server: its sockets stay open, nothing is answered (a frozen VM, a long fork). */
  freeze(): void;
  /** SIGCONT a frozen server: it reads and runs what was sent meanwhile. */
  thaw(): void;
  /** Run a redis-cli command against this server and return its output (trimmed). */
  cli(...args: string[]): string;
  /** Stop for good and remove its directory. */
  stop(): Promise<void>;
}

/** Start a standalone redis-server on a free port, without persistence. Resolves once it answers PING. */
export async function startRedis(options: { port?: number; extraArgs?: string[] } = {}): Promise<RedisProcess> {
  installExitHook();
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'herald-redis-'));
  dirs.add(dir);
  const args = [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir,
    '--daemonize', 'no', '--loglevel', 'warning', '--logfile', join(dir, 'redis.log'),
    ...(options.extraArgs ?? []),
  ];
  let proc: ChildProcess | undefined;
  const launch = async (): Promise<void> => {
    const p = spawn('redis-server', args, { stdio: 'ignore' });
    live.add(p);
    p.once('exit', () => live.delete(p));
    proc = p;
    await waitForPing(port, p);
  };
  await launch();
  const handle: RedisProcess = {
    port,
    url: `redis://127.0.0.1:${port}`,
    get running() {
      return proc !== undefined && proc.exitCode === null && proc.signalCode === null;
    },
    async kill() {
      const p = proc;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      const exited = new Promise<void>((r) => p.once('exit', () => r()));
      p.kill('SIGKILL');
      await exited;
    },
    async restart() {
      await handle.kill();
      await launch();
    },
    freeze() {
      proc?.kill('SIGSTOP');
    },
    thaw() {
      proc?.kill('SIGCONT');
    },
    cli: (...a: string[]) => redisCli(port, ...a),
    async stop() {
      await handle.kill();
      rmSync(dir, { recursive: true, force: true });
      dirs.delete(dir);
    },
  };
  return handle;
}

/** Run redis-cli against 127.0.0.1:port; throws if it fails. `-c` follows cluster redirections. */
export function redisCli(port: number, ...args: string[]): string {
  const r = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`redis-cli ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
  return r.stdout.trim();
}

async function waitForPing(port: number, p: ChildProcess, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (p.exitCode !== null) throw new Error(`redis-server on port ${port} exited with code ${p.exitCode}`);
    if (await ping(port)) return;
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A raw PING over a socket: no client library, so it is what a plain Redis client sees. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(500, () => done(false));
    s.once('error', () => done(false));
    s.once('connect', () => s.write('PING\r\n'));
    s.once('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

export interface RedisClusterProcesses {
  readonly nodes: readonly RedisProcess[];
  /** `redis-cluster://127.0.0.1:P1,127.0.0.1:P2,...` */
  readonly url: string;
  /** redis-cli -c against the first node (follows MOVED). */
  cli(...args: string[]): string;
  stop(): Promise<void>;
}

/**
 * Start `masters * (1 + replicas)` redis-server processes in cluster mode and join them with
 * `redis-cli --cluster create` (which makes the first `masters` of them masters). `extraArgs` go to every server
 * (e.g. `--cluster-require-full-coverage no`).
 */
export async function startRedisCluster(masters = 3, replicas = 0, extraArgs: readonly string[] = []): Promise<RedisClusterProcesses> {
  const nodes: RedisProcess[] = [];
  try {
    for (let i = 0; i < masters * (1 + replicas); i++) {
      const port = await freeClusterPort();
      nodes.push(
        await startRedis({
          port,
          extraArgs: ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000', ...extraArgs],
        }),
      );
    }
    const addrs = nodes.map((n) => `127.0.0.1:${n.port}`);
    const r = spawnSync('redis-cli', ['--cluster', 'create', ...addrs, '--cluster-replicas', String(replicas), '--cluster-yes'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    if (r.status !== 0) throw new Error(`redis-cli --cluster create failed: ${r.stderr || r.stdout}`);
    await waitForClusterOk(nodes);
  } catch (err) {
    await Promise.all(nodes.map((n) => n.stop()));
    throw err;
  }
  const first = nodes[0] as RedisProcess;
  return {
    nodes,
    url: 'redis-cluster://' + nodes.map((n) => `127.0.0.1:${n.port}`).join(','),
    cli: (...a: string[]) => redisCli(first.port, '-c', ...a),
    stop: async () => {
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
}

async function waitForClusterOk(nodes: readonly RedisProcess[], timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = nodes.every((n) => /cluster_state:ok/.test(n.cli('CLUSTER', 'INFO')));
    // Every node must also agree that every slot is served, or the first MOVED would send a client astray.
    if (ok && nodes.every((n) => /cluster_slots_ok:16384/.test(n.cli('CLUSTER', 'INFO')))) return;
    if (Date.now() > deadline) throw new Error('cluster did not reach cluster_state:ok');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Client connections on a server whose name starts with `namePrefix` (CLIENT LIST), for connection-count tests. */
export function countClients(redis: RedisProcess, namePrefix: string): number {
  return redis
    .cli('CLIENT', 'LIST')
    .split('\n')
    .filter((line) => {
      const m = / name=(\S*)/.exec(line);
      return m !== null && (m[1] ?? '').startsWith(namePrefix);
    }).length;
}

/**
 * A Herald node (in this process, port 0) on the given Redis broker URL, resolved once it is ready: start-up waits
 * for one connection attempt only, and on a loaded machine the first may time out and a retry succeed.
 */
export async function startNodeOnRedis(broker: string, overrides: Partial<HeraldConfig> = {}): Promise<TestServer> {
  const node = await startServer({ broker, ...overrides });
  try {
    await eventually(() => node.server.node.isReady(), 10_000, `node ready on ${broker}`);
  } catch (err) {
    await node.close();
    throw err;
  }
  return node;
}

/** The port of the master serving `slot`, as `node` sees it (CLUSTER NODES); undefined when none does. */
export function masterPortOfSlot(node: RedisProcess, slot: number): number | undefined {
  for (const line of node.cli('CLUSTER', 'NODES').split('\n')) {
    const [, address, flags, , , , , , ...slots] = line.split(' ');
    if (!address || !flags?.includes('master')) continue;
    for (const range of slots) {
      if (range.startsWith('[')) continue; // a slot being migrated
      const [from, to] = range.split('-').map(Number);
      if (from !== undefined && slot >= from && slot <= (to ?? from)) return Number(address.split('@')[0]?.split(':').pop());
    }
  }
  return undefined;
}
