/**
 * A child process that runs many SDK clients (Node, with the `ws` package injected) for the outage test
 * (sdk-outage.test.ts), so a thousand clients spread over a few processes. It talks to its parent over IPC:
 *
 *   parent → child  { type: 'start', urls, channels, from, to, probeMs? }   client i uses urls[i % urls.length] and
 *                                                                          channels[i % channels.length]
 *   child → parent  { type: 'connected', count }                            every client of this child is connected
 *   parent → child  { type: 'status', want }                                want: channel → a seq
 *   child → parent  { type: 'status', reached, connected }                  how many clients delivered a seq >= want
 *   parent → child  { type: 'report', acked, firstAfter, returnedAt }       acked: channel → acknowledged seqs
 *   child → parent  { type: 'report', rows }                                one ClientReport per client
 *
 * Messages carry `m<seq>`, seq growing over the whole run, so a client can tell order, duplicates and gaps. The
 * accounting (what "lost" and "covered by a reload" mean) is in ../helpers/accounting.ts.
 */
import WebSocket from 'ws';
import { HeraldClient } from '@herald/client';
import { accountClient } from '../helpers/accounting.js';

export interface StartCommand {
  readonly type: 'start';
  readonly urls: readonly string[];
  readonly channels: readonly string[];
  readonly from: number;
  readonly to: number;
  /** readyProbeIntervalMs for the SDK; undefined: its default. */
  readonly probeMs?: number;
}
export interface StatusCommand {
  readonly type: 'status';
  readonly want: Record<string, number>;
}
export interface ReportCommand {
  readonly type: 'report';
  readonly acked: Record<string, number[]>;
  /** Per channel, the first seq acknowledged after Redis came back. */
  readonly firstAfter: Record<string, number>;
  /** Date.now() when Redis was started again. */
  readonly returnedAt: number;
}
export type Command = StartCommand | StatusCommand | ReportCommand;

export interface ClientReport {
  readonly index: number;
  readonly url: string;
  /** Acknowledged messages neither delivered nor covered by a `missed` event. */
  readonly lost: number;
  /** Acknowledged messages not delivered, with a `missed` event where they belong. */
  readonly covered: number;
  readonly duplicates: number;
  readonly outOfOrder: number;
  readonly missedEvents: number;
  readonly connects: number;
  /** Redis' return to the first delivered message acknowledged after it; undefined: never. */
  readonly catchUpMs: number | undefined;
  /** Redis' return to the first `connected` after it; undefined: stayed connected (or never came back). */
  readonly reconnectMs: number | undefined;
  /** The client's connecting and error events from Redis' return on, as `+ms text`. */
  readonly notes: string[];
}

interface Record1 {
  readonly client: HeraldClient;
  readonly url: string;
  readonly channel: string;
  readonly seqs: number[];
  readonly times: number[];
  /** Number of messages delivered before each `missed` event. */
  readonly missedAt: number[];
  readonly connectedAt: number[];
  /** What the client said while (re)connecting: [time, text], for the report's diagnostics. */
  readonly notes: [number, string][];
}

function main(): void {
  const clients: Record1[] = [];
  let announced = false;
  const send = (m: object): void => {
    process.send?.(m);
  };
  const checkConnected = (): void => {
    if (announced || clients.some((c) => c.client.state !== 'connected')) return;
    announced = true;
    send({ type: 'connected', count: clients.length });
  };
  process.on('message', (cmd: Command) => {
    if (cmd.type === 'start') {
      for (let i = cmd.from; i < cmd.to; i++) {
        const url = cmd.urls[i % cmd.urls.length] as string;
        const channel = cmd.channels[i % cmd.channels.length] as string;
        const client = new HeraldClient(url, {
          channels: [channel],
          ...(cmd.probeMs === undefined ? {} : { readyProbeIntervalMs: cmd.probeMs }),
          platform: { WebSocket },
        });
        const r: Record1 = { client, url, channel, seqs: [], times: [], missedAt: [], connectedAt: [], notes: [] };
        client.on('connecting', (e) => r.notes.push([Date.now(), `wait ${e.delayMs} (${e.reason})`]));
        client.on('error', (e) => r.notes.push([Date.now(), `${e.transport ?? e.type}: ${e.error.message}`]));
        client.on('message', (m) => {
          r.seqs.push(Number(String(m.data).slice(1)));
          r.times.push(Date.now());
        });
        client.on('missed', () => r.missedAt.push(r.seqs.length));
        client.on('connected', () => {
          r.connectedAt.push(Date.now());
          checkConnected();
        });
        clients.push(r);
        client.connect();
      }
    } else if (cmd.type === 'status') {
      const reached = clients.filter((c) => (c.seqs.at(-1) ?? -1) >= (cmd.want[c.channel] ?? Infinity)).length;
      const connected = clients.filter((c) => c.client.state === 'connected').length;
      send({ type: 'status', reached, connected });
    } else {
      const rows = clients.map((c, i): ClientReport => {
        const after = cmd.firstAfter[c.channel] ?? Infinity;
        const j = c.seqs.findIndex((s) => s >= after);
        const back = c.connectedAt.find((t) => t >= cmd.returnedAt);
        return {
          index: i,
          url: c.url,
          ...accountClient(c.seqs, c.missedAt, cmd.acked[c.channel] ?? []),
          missedEvents: c.missedAt.length,
          connects: c.connectedAt.length,
          catchUpMs: j < 0 ? undefined : (c.times[j] as number) - cmd.returnedAt,
          reconnectMs: back === undefined ? undefined : back - cmd.returnedAt,
          notes: c.notes.filter(([at]) => at >= cmd.returnedAt).map(([at, text]) => `+${at - cmd.returnedAt} ${text}`),
        };
      });
      for (const c of clients) c.client.disconnect();
      send({ type: 'report', rows });
      process.disconnect();
    }
  });
}

if (process.send) main();
