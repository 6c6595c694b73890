/**
 * Running the `herald` command as a child process, the way users run it. Every spawned process is registered and
 * killed by `killAll()` (call it from an `after` hook), so a failing test leaves nothing running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The repository root: tests run from dist/test, the command lives in bin/. */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const HERALD_BIN = fileURLToPath(new URL('../../../bin/herald.js', import.meta.url));

const live = new Set<ChildProcess>();

/**
 * An environment without the caller's HERALD_* and REDIS_URL, so the developer's shell cannot change a test. It
 * sets HERALD_WORKERS=1: outside --dev `herald serve` would fork one worker per CPU, and a test that means a
 * multi-process machine asks for it (test/workers.test.ts).
 */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith('HERALD_') && k !== 'REDIS_URL') env[k] = v;
  }
  return { ...env, HERALD_WORKERS: '1', ...extra };
}

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Spawned {
  proc: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<Finished>;
}

/** Spawn `command args` (in `cwd`, the checkout by default) with output captured; killAll() kills it if still running. */
export function spawnTracked(command: string, args: string[], env: Record<string, string> = cleanEnv(), cwd = ROOT): Spawned {
  const proc = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  let out = '';
  let err = '';
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<Finished>((resolve) => {
    proc.once('close', (code, signal) => {
      live.delete(proc);
      resolve({ code, signal, stdout: out, stderr: err });
    });
  });
  return { proc, stdout: () => out, stderr: () => err, exited };
}

/** Run `herald ARGS` to completion (killed after `timeoutMs`). */
export async function runHerald(args: string[], env: Record<string, string> = cleanEnv(), timeoutMs = 15_000): Promise<Finished> {
  const child = spawnTracked(process.execPath, [HERALD_BIN, ...args], env);
  const timer = setTimeout(() => child.proc.kill('SIGKILL'), timeoutMs);
  try {
    return await child.exited;
  } finally {
    clearTimeout(timer);
  }
}

export interface RunningHerald extends Spawned {
  /** The base URL the node printed, e.g. http://127.0.0.1:40123. */
  url: string;
}

/**
 * Start `herald serve ARGS` (give `--port 0`) and wait until it prints the URL it serves on: the development
 * banner's "at http://HOST:PORT", or the "herald listening" log line's address.
 */
export async function startHerald(args: string[], env: Record<string, string> = cleanEnv(), timeoutMs = 15_000): Promise<RunningHerald> {
  return servedUrl(spawnTracked(process.execPath, [HERALD_BIN, 'serve', ...args], env), timeoutMs);
}

/** Wait until a spawned `herald serve` prints the URL it serves on (see startHerald); kill it if it never does. */
export async function servedUrl(child: Spawned, timeoutMs = 15_000): Promise<RunningHerald> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const banner = /at (http:\/\/[^\s()]+?)\s/.exec(child.stdout());
    if (banner?.[1]) return { ...child, url: banner[1] };
    const log = /"address":"([^"]+):(\d+)"/.exec(child.stderr());
    if (log?.[1] && log[2]) {
      const host = log[1] === '0.0.0.0' ? '127.0.0.1' : log[1];
      return { ...child, url: `http://${host}:${log[2]}` };
    }
    if (child.proc.exitCode !== null || child.proc.signalCode !== null) {
      throw new Error(`herald serve exited early:\n${child.stdout()}\n${child.stderr()}`);
    }
    if (Date.now() > deadline) {
      child.proc.kill('SIGKILL');
      throw new Error(`herald serve did not start:\n${child.stdout()}\n${child.stderr()}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Kill every process still running that these helpers started. */
export async function killAll(): Promise<void> {
  const waits: Promise<unknown>[] = [];
  for (const proc of live) {
    waits.push(new Promise((r) => proc.once('close', r)));
    proc.kill('SIGKILL');
  }
  await Promise.all(waits);
}
