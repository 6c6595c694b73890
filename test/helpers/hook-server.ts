/**
 * A real HTTP backend for the hook tests (node:http on a free port): records every request it receives and answers
 * each with whatever the test's `respond` says, including never, slowly, or with a broken body.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HookRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
  readonly at: number;
}

export type Respond = (req: HookRequest, res: http.ServerResponse, n: number) => void | Promise<void>;

export interface HookServer {
  readonly url: string;
  readonly requests: HookRequest[];
  respond: Respond;
  close(): Promise<void>;
}

export const answerJson = (res: http.ServerResponse, status: number, body: unknown): void => {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
};

export async function startHookServer(respond: Respond = (_req, res) => answerJson(res, 200, {})): Promise<HookServer> {
  const requests: HookRequest[] = [];
  const open = new Set<http.ServerResponse>();
  const state: HookServer = {
    url: '',
    requests,
    respond,
    close: async () => {
      for (const res of open) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: HookRequest = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        at: Date.now(),
      };
      requests.push(r);
      open.add(res);
      res.once('close', () => open.delete(res));
      Promise.resolve(state.respond(r, res, requests.length)).catch(() => res.destroy());
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  (state as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return state;
}
