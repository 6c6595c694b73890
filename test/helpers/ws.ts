/** A WebSocket test client on the `ws` npm package: frames received so far, requests with replies, the close code. */
import WebSocket from 'ws';

export interface Frame {
  type: string;
  id?: number | string;
  channel?: string;
  data?: string;
  result?: Record<string, unknown>;
  error?: { code: string; message: string };
  reason?: string;
}

export interface WsClient {
  ws: WebSocket;
  frames: Frame[];
  /** Messages (type "message") received so far. */
  messages(): Frame[];
  /** Send a request with a fresh id and resolve with its reply or error frame. */
  request(op: string, fields?: Record<string, unknown>): Promise<Frame>;
  waitFrames(check: (frames: Frame[]) => boolean, timeoutMs?: number, what?: string): Promise<void>;
  closed: Promise<{ code: number; reason: string }>;
  close(): void;
}

/** Open a WebSocket; resolves once open, or rejects with the HTTP status of a refused upgrade. */
export function openWs(url: string, options: WebSocket.ClientOptions = {}): Promise<WsClient> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, 'ws'), options);
    const frames: Frame[] = [];
    const waiters = new Set<() => void>();
    let nextId = 1;
    const wake = (): void => {
      for (const w of [...waiters]) w();
    };
    const closed = new Promise<{ code: number; reason: string }>((r) =>
      ws.once('close', (code, reason) => {
        r({ code, reason: reason.toString() });
        wake();
      }),
    );
    ws.on('message', (raw) => {
      frames.push(JSON.parse(String(raw)) as Frame);
      wake();
    });
    ws.on('error', () => undefined);
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode })));
    const client: WsClient = {
      ws,
      frames,
      closed,
      messages: () => frames.filter((f) => f.type === 'message'),
      waitFrames(check, timeoutMs = 5000, what = 'frames') {
        return new Promise((ok, fail) => {
          const done = (): void => {
            clearTimeout(timer);
            waiters.delete(test);
          };
          const test = (): void => {
            if (check(frames)) {
              done();
              ok();
            } else if (ws.readyState === WebSocket.CLOSED) {
              done();
              fail(new Error(`closed while waiting for ${what}; got ${JSON.stringify(frames)}`));
            }
          };
          const timer = setTimeout(() => {
            waiters.delete(test);
            fail(new Error(`timed out waiting for ${what}; got ${JSON.stringify(frames)}`));
          }, timeoutMs);
          waiters.add(test);
          test();
        });
      },
      async request(op, fields = {}) {
        const id = nextId++;
        ws.send(JSON.stringify({ op, id, ...fields }));
        let answer: Frame | undefined;
        await client.waitFrames(() => (answer = frames.find((f) => f.id === id && (f.type === 'reply' || f.type === 'error'))) !== undefined, 5000, `reply to ${op}`);
        return answer as Frame;
      },
      close: () => ws.close(),
    };
    ws.once('open', () => resolve(client));
  });
}
