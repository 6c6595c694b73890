/**
 * The pages the browser tests load, served from their own origin (so every request to Herald is cross-origin, as on
 * a real site): one using the SDK from client/dist, one using nothing but the browser's EventSource. Each page keeps
 * what it received in `window.herald` for the test to read.
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';

/** What a page exposes to the test. */
export interface PageState {
  /** `data` of every message, in arrival order. */
  got: string[];
  /** Message ids, in arrival order. */
  ids: string[];
  state: string;
  /** Connections opened (SDK: `connected` events; EventSource: `open` events). */
  opens: number;
  /** Transports of the SDK's connections. */
  transports: string[];
  missed: number;
  errors: string[];
}

const SDK_PAGE = `<!doctype html><meta charset="utf-8"><title>sdk</title>
<script type="module">
  import { HeraldClient } from '/sdk/index.js';
  const q = new URLSearchParams(location.search);
  const s = (window.herald = { got: [], ids: [], state: 'new', opens: 0, transports: [], missed: 0, errors: [] });
  const client = new HeraldClient(q.get('server'), {
    channels: q.getAll('channel'),
    transports: q.getAll('transport').length > 0 ? q.getAll('transport') : undefined,
    minReconnectDelayMs: 50,
    maxReconnectDelayMs: 500,
  });
  client.on('message', (m) => { s.got.push(m.data); s.ids.push(m.id); });
  client.on('state', (e) => { s.state = e.state; });
  client.on('connected', (e) => { s.opens++; s.transports.push(e.transport); });
  client.on('missed', () => { s.missed++; });
  client.on('error', (e) => { s.errors.push(e.type + ': ' + e.error.message); });
  client.connect();
</script>`;

/** The README's plain variant: EventSource reconnects by itself and resends the last id as Last-Event-ID. */
const PLAIN_PAGE = `<!doctype html><meta charset="utf-8"><title>plain</title>
<script>
  const q = new URLSearchParams(location.search);
  const s = (window.herald = { got: [], ids: [], state: 'new', opens: 0, transports: [], missed: 0, errors: [] });
  const es = new EventSource(q.get('server') + '/sse?channel=' + encodeURIComponent(q.get('channel')));
  es.onopen = () => { s.opens++; s.state = 'connected'; };
  es.onerror = () => { s.state = es.readyState === 2 ? 'disconnected' : 'connecting'; };
  es.onmessage = (e) => { const [, , data, id] = JSON.parse(e.data); s.got.push(data); s.ids.push(id); };
  es.addEventListener('reload', () => { s.missed++; });
  // The server's reasons for ending a stream (e.g. broker_unavailable during a Redis outage), in errors.
  es.addEventListener('disconnect', (e) => { s.errors.push('disconnect: ' + JSON.parse(e.data)[1]); });
</script>`;

const TYPES: Record<string, string> = { '.js': 'text/javascript', '.map': 'application/json', '.ts': 'text/plain' };

export interface PageServer {
  readonly origin: string;
  close(): Promise<void>;
}

/** Serve the two pages and client/dist (the built SDK, as a site would ship it) on 127.0.0.1. */
export async function startPageServer(clientDist: string): Promise<PageServer> {
  const server = http.createServer((req, res) => {
    void (async () => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (path === '/sdk.html' || path === '/plain.html') {
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
        res.end(path === '/sdk.html' ? SDK_PAGE : PLAIN_PAGE);
        return;
      }
      const rel = normalize(path.slice('/sdk/'.length));
      if (!path.startsWith('/sdk/') || rel.startsWith('..')) {
        res.writeHead(404).end();
        return;
      }
      try {
        const body = await readFile(join(clientDist, rel));
        const ext = rel.slice(rel.lastIndexOf('.'));
        res.writeHead(200, { 'Content-Type': TYPES[ext] ?? 'application/octet-stream', 'Cache-Control': 'no-store' });
        res.end(body);
      } catch {
        res.writeHead(404).end();
      }
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}
