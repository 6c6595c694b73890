/**
 * Socket.IO for the side-by-side harness: bench/socketio-server.ts (a node:cluster primary and W workers on
 * @socket.io/cluster-adapter) on a free loopback port, started and stopped here, leaving no process behind.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sleep } from './clock.js';
import { descendants, type RunningServer } from './nchan-server.js';
import { freePort, healthy } from './server-process.js';

const SERVER_SCRIPT = fileURLToPath(new URL('./socketio-server.js', import.meta.url));

export async function startSocketIo(workers = 2, readyTimeoutMs = 15_000): Promise<RunningServer> {
  const port = await freePort();
  const args = [SERVER_SCRIPT, '--port', String(port), '--workers', String(workers)];
  // stdin is a pipe the server watches: if this process dies, the server sees it close and exits.
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  let exited = false;
  let ready = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => {
    exited = true;
    resolve();
  }));
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    if (d.includes('ready')) ready = true;
  });
  const primary = child.pid ?? 0;
  const killAll = (): void => {
    for (const p of [...descendants(primary), primary]) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  const url = `http://127.0.0.1:${port}`;
  const server: RunningServer = {
    name: 'socketio',
    url,
    command: `node dist/bench/socketio-server.js ${args.slice(1).join(' ')}`,
    pids: () => [primary, ...descendants(primary)],
    async stop() {
      if (exited) return;
      // The primary SIGKILLs its workers, waits for their exits and exits; if it has not after 5 s, kill them all.
      child.kill('SIGTERM');
      await Promise.race([exit, sleep(5000)]);
      if (!exited) killAll();
      await exit;
    },
    killNow: killAll,
  };
  const deadline = Date.now() + readyTimeoutMs;
  while (!(ready && (await healthy(url)))) {
    if (exited || Date.now() > deadline) {
      await server.stop();
      throw new Error(`Socket.IO did not start: ${server.command}`);
    }
    await sleep(100);
  }
  return server;
}
