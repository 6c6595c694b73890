/**
 * The server under test: started by the bench (`--spawn`) so it knows the pid and stops it afterwards, or an
 * already running one named by `--server-pid`. RSS is read from /proc/PID/status.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
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

/** A free TCP port on 127.0.0.1 (there is a small window before the server binds it; good enough for a bench). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
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
    if (exited) throw new Error(`the server exited during start-up: ${server.command}`);
    if (await healthy(url)) return server;
    if (Date.now() > deadline) {
      server.killNow();
      throw new Error(`the server did not answer /healthz within ${readyTimeoutMs} ms: ${server.command}`);
    }
    await sleep(100);
  }
}

async function healthy(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}
