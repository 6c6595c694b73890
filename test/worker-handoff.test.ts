/**
 * A connection the primary hands to a worker in the instant that worker dies must not stay open unanswered
 * (issue 12: about one /poll client in 40-100 stalled for ever after a worker kill).
 *
 * node:cluster's round-robin primary accepts each connection and sends it to a worker over IPC, and closes its own
 * copy only when the worker acknowledges it. A worker that dies with one in flight never acknowledges: the primary
 * kept that descriptor open for ever, so the client's TCP connection stayed established with nobody reading it.
 * The race is made certain here: the worker is frozen (SIGSTOP) while connections arrive, so one is handed to it
 * and waits unacknowledged, and is then SIGKILLed. Every connection must be answered or closed, none left hanging.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, test } from 'node:test';
import { cleanEnv, killAll, startHerald } from './helpers/cli.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

after(killAll);

interface Attempt {
  readonly socket: Socket;
  answered: boolean;
  closed: boolean;
}

/** A fresh connection asking GET /healthz; it records whether an answer came and whether the connection ended. */
function attempt(port: number): Attempt {
  const socket = connect(port, '127.0.0.1');
  const a: Attempt = { socket, answered: false, closed: false };
  socket.on('error', () => undefined);
  socket.on('data', () => (a.answered = true));
  socket.on('close', () => (a.closed = true));
  socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
  return a;
}

async function workerPids(port: number): Promise<number[]> {
  for (let i = 0; i < 400; i++) {
    const a = attempt(port);
    let text = '';
    a.socket.setEncoding('utf8').on('data', (d: string) => (text += d));
    await new Promise((r) => a.socket.once('close', r));
    const body = text.slice(text.indexOf('\r\n\r\n') + 4);
    try {
      const health = JSON.parse(body) as { workers: { workers: { pid: number; ready: boolean }[] } };
      const pids = health.workers.workers.filter((w) => w.ready).map((w) => w.pid);
      if (pids.length === 2) return pids;
    } catch {
      /* not ready to answer yet */
    }
    await sleep(50);
  }
  throw new Error('the workers never got ready');
}

test('a connection handed to a worker as it dies is closed, not left open unanswered', async () => {
  const herald = await startHerald(['--dev', '--workers', '2', '--port', '0'], cleanEnv(), 30_000);
  const port = Number(new URL(herald.url).port);
  const [victim] = await workerPids(port);
  assert.ok(victim);
  process.kill(victim, 'SIGSTOP');
  try {
    // Round-robin: the frozen worker gets one connection (which it cannot acknowledge), the other worker the rest.
    const attempts: Attempt[] = [];
    for (let i = 0; i < 6; i++) attempts.push(attempt(port));
    await sleep(500);
    const waiting = attempts.filter((a) => !a.answered);
    assert.equal(waiting.length, 1, 'exactly one connection sits with the frozen worker');
    process.kill(victim, 'SIGKILL');
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline && !waiting.every((a) => a.closed)) await sleep(25);
    assert.ok(waiting.every((a) => a.closed), 'the connection in flight to the dead worker was closed (the client can retry)');
    // And the machine goes on: the restarted worker and the other one answer new connections.
    const later = attempt(port);
    await new Promise((r) => later.socket.once('close', r));
    assert.ok(later.answered);
    for (const a of attempts) a.socket.destroy();
  } finally {
    try {
      process.kill(victim, 'SIGKILL');
    } catch {
      /* already gone */
    }
    herald.proc.kill('SIGTERM');
    await herald.exited;
  }
});
