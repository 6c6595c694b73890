#!/usr/bin/env node
/* global setTimeout */
// The server CPU a dribbled publish body costs: start `herald serve`, send one POST /api/publish whose 64 KB body
// arrives a few bytes per read, and print the server's CPU time (user + system, from /proc) for it, on the publish
// fast path (`POST /api/publish HTTP/1.1`) and on node:http's path (`POST /api/publish? HTTP/1.1`, which the
// fast path hands on). Linux only. Usage: node scripts/dribble-cpu.js [path/to/bin/herald.js] [bytes-per-write]
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

const bin = process.argv[2] ?? fileURLToPath(new URL('../bin/herald.js', import.meta.url));
const step = Number(process.argv[3] ?? 16);
const KEY = 'dribble-key-0123456789';
const BODY_BYTES = 64 * 1024 - 100;

function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks of 1/100 s
}

async function start() {
  const env = { ...process.env, HERALD_SECRET: 'dribble-secret-0123456789-abcdefghijklmnop', HERALD_API_KEYS: KEY };
  const proc = spawn(process.execPath, [bin, 'serve', '--port', '0', '--host', '127.0.0.1', '--max-body-bytes', '70000'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr.setEncoding('utf8').on('data', (d) => (err += d));
  for (;;) {
    const m = /"address":"127\.0\.0\.1:(\d+)"/.exec(err);
    if (m) return { proc, port: Number(m[1]) };
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function dribble(port, target) {
  const body = JSON.stringify({ channel: 'dribble', data: 'x'.repeat(BODY_BYTES) });
  const head = `POST ${target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await new Promise((r) => socket.once('connect', r));
  let got = '';
  socket.on('data', (d) => (got += d));
  socket.write(head);
  for (let i = 0; i < body.length; i += step) {
    await new Promise((r) => socket.write(body.slice(i, i + step), r));
    // Let the server read each piece on its own, as from a slow client.
    await new Promise((r) => setTimeout(r, 0));
  }
  while (!/^HTTP\/1\.1 \d{3}/.test(got)) await new Promise((r) => setTimeout(r, 5));
  socket.destroy();
  return got.slice(0, 12);
}

const { proc, port } = await start();
try {
  for (const [name, target] of [['fast path', '/api/publish'], ['node:http', '/api/publish?']]) {
    const before = cpuSeconds(proc.pid);
    const t0 = Date.now();
    const status = await dribble(port, target);
    console.log(`${name}: ${status.trim()}, ${BODY_BYTES + 30} B body in ${step}-byte writes: server CPU ${(cpuSeconds(proc.pid) - before).toFixed(2)} s (wall ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  }
} finally {
  proc.kill('SIGKILL');
}
