/**
 * A /sub client that knows which worker of `herald serve --workers N` serves it: on one raw keep-alive connection it
 * asks GET /healthz (whose body names the worker and every worker's pid), then GET /sub on the same connection, so
 * the stream is on that worker. It collects the stream's messages, in order, with their ids.
 */
import { connect, type Socket } from 'node:net';

export interface WorkerStatusLite {
  readonly id: number;
  readonly pid: number;
  readonly ready: boolean;
  readonly connections: number;
}

export interface Received {
  readonly data: string;
  readonly id: string;
}

export class WorkerSub {
  readonly messages: Received[] = [];
  /** Every frame of the stream (messages, joins, leaves, disconnects), in order. */
  readonly frames: unknown[][] = [];
  worker = 0;
  workerPid = 0;
  workers: WorkerStatusLite[] = [];
  closed = false;
  disconnects: string[] = [];
  private socket: Socket | undefined;
  private text = '';
  private seen = 0;

  constructor(
    private readonly port: number,
    private readonly channel: string,
    /** More of the /sub query, e.g. `joinLeave=1`. */
    private readonly extraQuery = '',
  ) {}

  /** Connect (resuming after `since` when given; '' asks for ids from now) and wait until the stream's head came. */
  open(since = ''): Promise<void> {
    this.closed = false;
    this.text = '';
    this.seen = 0;
    return new Promise((resolve, reject) => {
      const socket = connect(this.port, '127.0.0.1');
      this.socket = socket;
      let phase: 'health' | 'stream' = 'health';
      socket.setEncoding('utf8');
      socket.on('error', () => undefined);
      socket.on('close', () => {
        this.closed = true;
        if (phase === 'health') reject(new Error('closed before /healthz answered'));
      });
      socket.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      socket.on('data', (chunk: string) => {
        this.text += chunk;
        if (phase === 'health') {
          const end = this.text.indexOf('\r\n\r\n');
          const length = /content-length: (\d+)/i.exec(this.text)?.[1];
          if (end < 0 || length === undefined || this.text.length < end + 4 + Number(length)) return;
          const body = JSON.parse(this.text.slice(end + 4, end + 4 + Number(length))) as {
            worker: number;
            workers: { workers: WorkerStatusLite[] };
          };
          this.worker = body.worker;
          this.workers = body.workers.workers;
          this.workerPid = this.workers.find((w) => w.id === body.worker)?.pid ?? 0;
          this.text = this.text.slice(end + 4 + Number(length));
          phase = 'stream';
          const q = `channel=${encodeURIComponent(this.channel)}&since=${encodeURIComponent(since)}${this.extraQuery ? '&' + this.extraQuery : ''}`;
          socket.write(`GET /sub?${q} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
          return;
        }
        if (this.text.includes('\r\n\r\n')) resolve();
        this.scan();
      });
    });
  }

  private scan(): void {
    const lines = this.text.split('\n');
    for (let i = this.seen; i < lines.length - 1; i++) {
      const line = (lines[i] ?? '').trim();
      if (!line.startsWith('[')) continue;
      const frame = JSON.parse(line) as unknown[];
      this.frames.push(frame);
      if (frame[0] === 'message') this.messages.push({ data: String(frame[2]), id: String(frame[3]) });
      if (frame[0] === 'disconnect') this.disconnects.push(String(frame[1]));
    }
    this.seen = lines.length - 1;
  }

  get lastId(): string {
    return this.messages[this.messages.length - 1]?.id ?? '';
  }

  close(): void {
    this.socket?.destroy();
  }
}
