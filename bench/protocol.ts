/**
 * What the bench sends over the wire and between its processes.
 *
 * Message data is `<step>:<seq>:<sentUs>`: the step tells a late message of an earlier rate step from a current
 * one, `seq` is the message's number within its channel (duplicates and reordering are told from it), and `sentUs`
 * is the publisher's scheduled send time on the shared monotonic clock (see clock.ts).
 */
import type { SparseHistogram } from './histogram.js';

/** `pusher`: the Pusher protocol at /app/app-key (the --dev app), one pusher:subscribe per connection. */
export type Transport = 'sub' | 'sse' | 'ws' | 'pusher';

/** What one worker process is asked to hold. Connection `i` subscribes channel `channelName(prefix, i % channels)`. */
export interface PoolSpec {
  host: string;
  port: number;
  /** With several nodes (--nodes): connection i goes to ports[i % ports.length] instead of `port`. */
  ports?: number[];
  transport: Transport;
  /** Nchan: messages arrive as their bare data (a line, an SSE data field, a text frame). */
  nchan?: boolean;
  /** Socket.IO (bench/socketio-server.ts): socket.io-client connections, whatever `transport` says. */
  socketio?: boolean;
  /** The churn scenario: this worker's share of fresh connections per second during a step, each held holdMs. */
  churn?: { perSecond: number; holdMs: number };
  firstIndex: number;
  count: number;
  channels: number;
  channelPrefix: string;
  localAddresses: string[];
  /** Connection attempts in flight at once in this process. */
  concurrency: number;
  connectTimeoutMs: number;
}

export function channelName(prefix: string, index: number): string {
  return prefix + index.toString(36);
}

export function messageData(step: number, seq: number, sentUs: number): string {
  return `${step}:${seq}:${sentUs}`;
}

export interface PoolProgress {
  held: number;
  failed: number;
  /** Held connections the server closed (or that broke) afterwards. */
  dropped: number;
  errors: Record<string, number>;
}

/** Churn connections of one step (bench/churn.ts). */
export interface ChurnStats {
  attempted: number;
  /** Came up (200, 101, Socket.IO connect) and were closed by the generator after their hold time. */
  live: number;
  failed: number;
  errors: Record<string, number>;
}

export interface StepStats extends PoolProgress {
  step: number;
  /** Distinct messages of this step received (duplicates excluded). */
  received: number;
  duplicates: number;
  /** Messages received after a later one of the same channel on the same connection. */
  reordered: number;
  /** Messages of an earlier step (arrived after that step's drain time). */
  stale: number;
  /** Deliveries expected by the connections held now, from the publisher's per-channel success counts. */
  expected: number;
  /** Receive time of the last message of this step (shared clock, µs), 0 if none. */
  lastReceiveUs: number;
  disconnectFrames: number;
  /** `reload` notices received: the server telling clients that messages were missed. */
  reloads: number;
  latency: SparseHistogram;
  churn?: ChurnStats;
}

export type ToWorker =
  | { type: 'connect'; spec: PoolSpec }
  | { type: 'step'; step: number }
  | { type: 'expect'; step: number; okPerChannel: number[] }
  | { type: 'stats' }
  | { type: 'close' };

export type FromWorker =
  | { type: 'progress'; progress: PoolProgress }
  | { type: 'step-ready'; step: number }
  | { type: 'stats'; stats: StepStats }
  | { type: 'error'; message: string };
