/**
 * Nchan for the side-by-side harness: nginx with libnginx-mod-nchan, configured by bench/nchan.conf (two workers),
 * started in a temporary prefix on a free loopback port and stopped (and its prefix removed) at the end.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep } from './clock.js';
import { freePort, healthy } from './server-process.js';

const CONF = fileURLToPath(new URL('../../bench/nchan.conf', import.meta.url));
export const NGINX = '/usr/sbin/nginx';
export const NCHAN_MODULE = '/usr/lib/nginx/modules/ngx_nchan_module.so';

export interface RunningServer {
  readonly name: string;
  readonly url: string;
  readonly command: string;
  /** Every process of the server (master and workers), for CPU and RSS sums. */
  pids(): number[];
  stop(): Promise<void>;
  killNow(): void;
}

/** Is nginx with the Nchan module installed here? */
export function nchanInstalled(): boolean {
  return existsSync(NGINX) && existsSync(NCHAN_MODULE);
}

/** Processes whose parent is `pid`, and theirs (from /proc/PID/stat). */
export function descendants(pid: number): number[] {
  const byParent = new Map<number, number[]>();
  let names: string[] = [];
  try {
    names = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = byParent.get(ppid) ?? [];
      list.push(Number(name));
      byParent.set(ppid, list);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const c of byParent.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

export async function startNchan(readyTimeoutMs = 15_000): Promise<RunningServer> {
  const port = await freePort();
  const prefix = mkdtempSync(join(tmpdir(), 'herald-bench-nchan-'));
  mkdirSync(join(prefix, 'tmp'));
  writeFileSync(join(prefix, 'nchan.conf'), readFileSync(CONF, 'utf8').replaceAll('__PORT__', String(port)));
  const args = ['-p', prefix + '/', '-c', join(prefix, 'nchan.conf'), '-e', 'stderr', '-g', 'daemon off;'];
  const child = spawn(NGINX, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => {
    exited = true;
    resolve();
  }));
  const url = `http://127.0.0.1:${port}`;
  const master = child.pid ?? 0;
  const server: RunningServer = {
    name: 'nchan',
    url,
    command: `nginx ${args.join(' ')} (bench/nchan.conf, port ${port})`,
    pids: () => [master, ...descendants(master)],
    async stop() {
      if (!exited) {
        // SIGTERM: nginx's fast shutdown (SIGQUIT would wait for every held subscriber).
        child.kill('SIGTERM');
        await Promise.race([exit, sleep(8000)]);
        if (!exited) {
          for (const p of server.pids()) killQuietly(p);
          await exit;
        }
      }
      rmSync(prefix, { recursive: true, force: true });
    },
    killNow() {
      for (const p of server.pids()) killQuietly(p);
      rmSync(prefix, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + readyTimeoutMs;
  while (!(await healthy(url))) {
    if (exited || Date.now() > deadline) {
      await server.stop();
      throw new Error(`nginx with Nchan did not start: ${server.command}`);
    }
    await sleep(100);
  }
  return server;
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

