/**
 * Socket.IO 4 for the side-by-side harness (started and stopped by bench/socketio-process.ts):
 *   node dist/bench/socketio-server.js --port P [--host 127.0.0.1] [--workers 2]
 * The primary forks W node:cluster workers that share the port (the cluster module hands each accepted connection
 * to a worker in turn) and relays broadcasts between them (@socket.io/cluster-adapter). Each worker serves:
 *   - Socket.IO on the WebSocket transport only (the load generator never long-polls, so no sticky sessions are
 *     needed; @socket.io/sticky would also route every POST body through the primary): a client connecting with
 *     `?channel=NAME` joins room NAME;
 *   - POST /api/publish `{"channel":"NAME","data":"TEXT"}` → `io.to(NAME).emit("message", TEXT)`, answered 200 once
 *     handed to the adapter: the same request bench/publisher.ts sends to Herald;
 *   - GET /healthz.
 * The primary prints `ready` once every worker listens, and stops everything when its stdin closes (the harness
 * went away) or on SIGTERM/SIGINT.
 */
import cluster from 'node:cluster';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { Server } from 'socket.io';
import { createAdapter, setupPrimary } from '@socket.io/cluster-adapter';

const MAX_BODY_BYTES = 64 * 1024;
const OK_BODY = '{"ok":true}';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    workers: { type: 'string', default: '2' },
  },
});
const port = Number(values.port);
const workers = Number(values.workers);
if (!Number.isInteger(port) || port < 1 || port > 65_535 || !Number.isInteger(workers) || workers < 1 || workers > 64) {
  process.stderr.write('usage: socketio-server --port P [--host H] [--workers W]\n');
  process.exit(2);
}

if (cluster.isPrimary) runPrimary();
else runWorker();

function runPrimary(): void {
  setupPrimary();
  let listening = 0;
  let stopping = false;
  // Kill the workers and wait for their exits (reaping them) before exiting: nothing outlives the primary.
  const stop = (code: number): void => {
    if (stopping) return;
    stopping = true;
    const left = Object.values(cluster.workers ?? {}).filter((w) => w !== undefined);
    let waiting = left.length;
    if (waiting === 0) process.exit(code);
    for (const w of left) {
      w.once('exit', () => {
        if (--waiting === 0) process.exit(code);
      });
      w.process.kill('SIGKILL');
    }
    setTimeout(() => process.exit(code), 3000).unref();
  };
  cluster.on('listening', () => {
    if (++listening === workers) process.stdout.write('ready\n');
  });
  // A worker that dies takes its clients with it: the run is void, so say so and stop rather than limp on.
  cluster.on('exit', (w, code, signal) => {
    if (stopping) return;
    process.stderr.write(`socketio-server: worker ${w.process.pid} exited (${signal ?? code})\n`);
    stop(1);
  });
  for (let i = 0; i < workers; i++) cluster.fork();
  process.on('SIGTERM', () => stop(0));
  process.on('SIGINT', () => stop(0));
  // The harness holds our stdin: when it goes away (even killed), the pipe closes and so do we.
  process.stdin.on('end', () => stop(0));
  process.stdin.on('error', () => stop(0));
  process.stdin.resume();
}

function runWorker(): void {
  const httpServer = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 3 }).end('ok\n');
      return;
    }
    if (req.method === 'POST' && req.url === '/api/publish') {
      readBody(req, (body) => {
        const msg = parsePublish(body);
        if (!msg) {
          res.writeHead(400, { 'content-type': 'text/plain' }).end('bad publish\n');
          return;
        }
        io.to(msg.channel).emit('message', msg.data);
        // A Content-Length, not chunked: bench/publisher.ts splits pipelined answers by it.
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': OK_BODY.length }).end(OK_BODY);
      }, () => res.writeHead(413).end());
      return;
    }
    res.writeHead(404).end();
  });
  const io = new Server(httpServer, { transports: ['websocket'], serveClient: false, adapter: createAdapter() });
  io.on('connection', (socket) => {
    const channel = socket.handshake.query['channel'];
    if (typeof channel === 'string' && channel !== '') void socket.join(channel);
    else socket.disconnect(true);
  });
  httpServer.listen(port, values.host);
}

function readBody(req: http.IncomingMessage, done: (body: string) => void, tooLarge: () => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (c: Buffer) => {
    size += c.length;
    if (size <= MAX_BODY_BYTES) chunks.push(c);
  });
  req.on('end', () => (size > MAX_BODY_BYTES ? tooLarge() : done(Buffer.concat(chunks).toString('utf8'))));
}

/** The publish body, or undefined unless it is `{"channel": non-empty string, "data": string}`. */
function parsePublish(body: string): { channel: string; data: string } | undefined {
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const { channel, data } = v as Record<string, unknown>;
  if (typeof channel !== 'string' || channel === '' || typeof data !== 'string') return undefined;
  return { channel, data };
}
