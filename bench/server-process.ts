/**
 * The server under test: started by the bench (`--spawn`) so it knows the pid and stops it afterwards, or an
 * already running one named by `--server-pid`. RSS is read from /proc/PID/status.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { sleep } from './clock.js';

const HERALD_BIN = fileURLToPath(new URL('../../bin/herald.js', import.meta.url));
const GC_HOOK = new URL('./gc-hook.js', import.meta.url).href;

/** Resident set size of a process in bytes, or undefined when it cannot be read (gone, not Linux). */
export function readRss(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What a process's resident set is made of, in bytes: its own pages (anonymous: heap, stacks, buffers; and shared
 * memory) and file pages (mostly the node binary's code and data, mapped from the page cache and shared by every node
 * process on the machine). Undefined when unreadable.
 */
export function readRssParts(pid: number): { anonBytes: number; fileBytes: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
    const anonBytes = kb('RssAnon') + kb('RssShmem');
    const fileBytes = kb('RssFile');
    return Number.isFinite(anonBytes) && Number.isFinite(fileBytes) ? { anonBytes, fileBytes } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * CPU time (user + system) a process has used, in seconds, from /proc/PID/stat; undefined when unreadable.
 * Clock ticks are 100 per second on Linux (USER_HZ).
 */
export function readCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return undefined;
  }
}

/**
 * A port that is free now on 127.0.0.1, picked at random below the kernel's ephemeral range (32768+), so that the
 * many tests on this machine that listen on port 0 are unlikely to take it before the server binds it.
 */
export async function freePort(): Promise<number> {
  for (let i = 0; ; i++) {
    const port = i < 20 ? 20_000 + Math.floor(Math.random() * 12_000) : 0;
    const got = await new Promise<number | undefined>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(undefined));
      s.listen(port, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    if (got !== undefined) return got;
  }
}

/** Does process `pid` hold the listening socket of 127.0.0.1:port? (/proc/net/tcp inode → /proc/PID/fd.) */
export function listensOn(pid: number, port: number): boolean {
  try {
    const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
    const inodes = new Set<string>();
    for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f[1] === local && f[3] === '0A') inodes.add(f[9] ?? '');
    }
    if (inodes.size === 0) return false;
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      let target = '';
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m && inodes.has(m[1]!)) return true;
    }
    return false;
  } catch {
    return false;
  }
}

export interface SpawnedServer {
  readonly pid: number;
  readonly url: string;
  readonly command: string;
  stop(): Promise<void>;
  /** Run a full GC in the server (see gc-hook.ts) and give it a moment to return memory. */
  collectGarbage(): Promise<void>;
  /** Synchronous last resort for process 'exit' handlers. */
  killNow(): void;
}

/**
 * Start `node bin/herald.js serve --dev --host 127.0.0.1 --port P --log-level warn ...extraArgs` and wait until
 * /healthz answers. `nodeArgs` go to node itself (e.g. --cpu-prof).
 */
export async function spawnServer(extraArgs: string[], nodeArgs: string[], readyTimeoutMs = 15_000): Promise<SpawnedServer> {
  // Another process may take the port between the check and the server's bind: then the server exits, and the
  // bench tries another port rather than load somebody else's server.
  for (let attempt = 1; ; attempt++) {
    try {
      return await spawnOnce(extraArgs, nodeArgs, readyTimeoutMs);
    } catch (err) {
      if (!(err instanceof PortTaken) || attempt >= 5) throw err;
    }
  }
}

class PortTaken extends Error {}

async function spawnOnce(extraArgs: string[], nodeArgs: string[], readyTimeoutMs: number): Promise<SpawnedServer> {
  const port = await freePort();
  const args = [...nodeArgs, '--expose-gc', '--import', GC_HOOK, HERALD_BIN, 'serve', '--dev', '--host', '127.0.0.1', '--port', String(port),
    '--log-level', 'warn', '--drain-timeout-ms', '1000', ...extraArgs];
  // stdout carries --dev's help text, which the bench does not need; warnings and errors (stderr) are shown.
  const child: ChildProcess = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => {
    exited = true;
    resolve();
  }));
  const url = `http://127.0.0.1:${port}`;
  const server: SpawnedServer = {
    pid: child.pid ?? 0,
    url,
    command: ['node', ...args.map((a) => (a === HERALD_BIN ? 'bin/herald.js' : a === GC_HOOK ? 'dist/bench/gc-hook.js' : a))].join(' '),
    async stop() {
      if (exited) return;
      // SIGTERM drains (and lets --cpu-prof write its profile); SIGKILL if that takes too long.
      child.kill('SIGTERM');
      await Promise.race([exit, sleep(8000)]);
      if (!exited) {
        child.kill('SIGKILL');
        await exit;
      }
    },
    killNow() {
      if (!exited) child.kill('SIGKILL');
    },
    async collectGarbage() {
      if (exited) return;
      child.kill('SIGUSR2');
      await sleep(1000);
    },
  };
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (exited) throw new PortTaken(`the server exited during start-up: ${server.command}`);
    if (await healthy(url)) {
      if (listensOn(server.pid, port)) return server;
      // Something answers on the port, but not our server: it lost the port race.
      await server.stop();
      throw new PortTaken(`port ${port} was taken by another process`);
    }
    if (Date.now() > deadline) {
      server.killNow();
      throw new Error(`the server did not answer /healthz within ${readyTimeoutMs} ms: ${server.command}`);
    }
    await sleep(100);
  }
}

/** Whether `url`'s /healthz answers 2xx within a second (Herald and the harness's Nchan config both serve it). */
export async function healthy(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}
