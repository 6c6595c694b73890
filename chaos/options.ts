/** `npm run chaos -- SCENARIO [options]`: the options every scenario shares, parsed once. */
import { parseArgs } from 'node:util';
import { KINDS, type Kind } from './clients.js';

export interface ChaosOptions {
  readonly scenario: string;
  /** Checked subscribers, spread over the transports. @default 1000 (storm: 5000) */
  readonly subscribers: number;
  readonly channels: number;
  /** Publishes per second, over all channels. @default 200 */
  readonly rate: number;
  /** How long the run publishes, ms (churn: how long it churns). @default 30 s (churn: 10 min) */
  readonly durationMs: number;
  /** How long a fault lasts (Redis down or paused), ms. @default 10 s */
  readonly outageMs: number;
  readonly kinds: readonly Kind[];
  /** Subscribers per fleet process. @default 500 */
  readonly perProcess: number;
  readonly json: boolean;
}

export const USAGE = `usage: npm run chaos -- SCENARIO [options]

scenarios:
  redis-restart     Redis restarted (SIGTERM, started again at once, empty)
  redis-pause       Redis frozen with SIGSTOP for --outage, then SIGCONT
  redis-kill        Redis SIGKILLed, down for --outage, then started again (empty)
  node-kill         two nodes on one Redis behind a balancer; one SIGKILLed; clients resume on the other
  worker-kill       herald serve --workers 3 (embedded broker): a worker SIGKILLed, its clients resume on the others, it is restarted
  cluster-failover  Redis Cluster (3 masters + 3 replicas): a master SIGKILLed mid-stream, its replica promoted
  storm             a node SIGKILLed and restarted under 5,000+ clients (over 127.0.0.x source addresses)
  churn             --duration (default 10m) of connections of many kinds, next to the checked subscribers
  slow-consumers    slow and never-reading clients beside fast ones on one hot channel
  history-pressure  100,000 distinct channels with history: under historyMaxBytes, memory back after the TTL

options:
  --subscribers N   checked subscribers, spread over the transports (default 1000; storm 5000)
  --channels N      channels they listen to (default 50)
  --rate N          publishes per second (default 200)
  --duration T      how long to publish (default 30s; churn 10m), e.g. 20s, 2m
  --outage T        how long Redis stays down or frozen (default 10s)
  --transports L    comma-separated subset of ${KINDS.join(',')} (default: all)
  --per-process N   subscribers per client process (default 500)
  --json            print the figures as JSON instead of a table
`;

/** '20s', '2m', '500ms', or a bare number of seconds. */
export function parseDuration(text: string, name: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) throw new Error(`${name}: not a duration: ${text} (e.g. 20s, 2m, 500ms)`);
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000;
}

function positive(text: string | undefined, name: string, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name}: not a positive integer: ${text}`);
  return n;
}

export function parseOptions(argv: readonly string[]): ChaosOptions {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      subscribers: { type: 'string' },
      channels: { type: 'string' },
      rate: { type: 'string' },
      duration: { type: 'string' },
      outage: { type: 'string' },
      transports: { type: 'string' },
      'per-process': { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const scenario = positionals[0];
  if (values.help || scenario === undefined) throw new UsageError();
  const kinds = (values.transports?.split(',') ?? [...KINDS]).map((k) => k.trim());
  for (const k of kinds) if (!(KINDS as readonly string[]).includes(k)) throw new Error(`--transports: unknown transport ${k}`);
  return {
    scenario,
    subscribers: positive(values.subscribers, '--subscribers', scenario === 'storm' ? 5000 : 1000),
    channels: positive(values.channels, '--channels', 50),
    rate: positive(values.rate, '--rate', 200),
    durationMs: values.duration ? parseDuration(values.duration, '--duration') : scenario === 'churn' ? 600_000 : 30_000,
    outageMs: values.outage ? parseDuration(values.outage, '--outage') : 10_000,
    kinds: kinds as Kind[],
    perProcess: positive(values['per-process'], '--per-process', 500),
    json: values.json ?? false,
  };
}

export class UsageError extends Error {}
