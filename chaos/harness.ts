/**
 * The course every stream scenario follows: start a broker and nodes, open the subscribers in fleet processes,
 * publish through the API, apply the scenario's fault, keep publishing until every subscriber has caught up, then
 * account per acknowledged message and per subscriber, close everything and check that the nodes' counts (sessions,
 * channels, broker subscriptions, descriptors) return to where they started.
 */
import { sleep } from '../bench/clock.js';
import { startRedis, startRedisCluster, type RedisClusterProcesses, type RedisProcess } from '../test/helpers/redis.js';
import { onCleanup } from './cleanup.js';
import { Fleets, type MergedKind } from './fleets.js';
import { HeraldNode, type Metrics } from './nodes.js';
import type { ChaosOptions } from './options.js';
import { Publisher, warmUp, type PublishFigures } from './publisher.js';

export type BrokerKind = 'memory' | 'redis' | 'cluster';

export interface Ctx {
  readonly opts: ChaosOptions;
  readonly redis: RedisProcess | undefined;
  readonly cluster: RedisClusterProcesses | undefined;
  readonly nodes: HeraldNode[];
  readonly fleets: Fleets;
  readonly publisher: Publisher;
  /** Lines for the report: what the fault did, when. */
  readonly notes: string[];
  /** Scenario-specific figures for the report and --json. */
  readonly extra: Record<string, number | string>;
  /** Scenario-specific failures. */
  readonly failures: string[];
  /** Milliseconds since the run began publishing, for notes. */
  at(): string;
}

export interface StreamScenario {
  readonly broker: BrokerKind;
  readonly nodes: number;
  readonly nodeArgs?: readonly string[];
  readonly channels?: readonly string[];
  readonly spreadAddresses?: boolean;
  /** Message padding in bytes. */
  readonly padding?: number;
  /** Runs the fault (or the scenario's extra load); resolves with the time the fault ended, if there was one. */
  fault(ctx: Ctx): Promise<number | undefined>;
  /** After the subscribers closed, before the counts are checked (e.g. waiting for a TTL). */
  afterClients?(ctx: Ctx): Promise<void>;
}

export interface NodeFigures {
  readonly url: string;
  readonly peakRssBytes: number;
  readonly peakFds: number;
  readonly before: Counts;
  readonly after: Counts | undefined;
}

export interface Counts {
  readonly sessions: number;
  readonly channels: number;
  readonly brokerChannels: number;
  readonly pollWaiting: number;
  readonly fds: number;
  readonly rssBytes: number;
}

export interface RunResult {
  readonly scenario: string;
  readonly options: ChaosOptions;
  readonly kinds: Record<string, MergedKind>;
  readonly publish: PublishFigures;
  readonly nodes: NodeFigures[];
  readonly notes: string[];
  readonly extra: Record<string, number | string>;
  readonly failures: string[];
  readonly fleetProcesses: number;
}

/** How many descriptors above its start a node may hold once every client is gone (a log file, a Redis reconnect). */
const FD_SLACK = 3;

function countsOf(m: Metrics, fds: number, rss: number): Counts {
  return {
    sessions: m['herald_sessions'] ?? NaN,
    channels: m['herald_hub_channels'] ?? NaN,
    brokerChannels: m['herald_broker_channels'] ?? NaN,
    pollWaiting: m['herald_poll_waiting'] ?? 0,
    fds,
    rssBytes: rss,
  };
}

async function counts(node: HeraldNode): Promise<Counts | undefined> {
  if (!node.running) return undefined;
  try {
    const m = await node.metrics();
    const s = node.sample();
    return countsOf(m, s?.fds ?? NaN, s?.rss ?? NaN);
  } catch {
    return undefined;
  }
}

export async function runStream(name: string, opts: ChaosOptions, scenario: StreamScenario): Promise<RunResult> {
  let redis: RedisProcess | undefined;
  let cluster: RedisClusterProcesses | undefined;
  let brokerUrl = 'memory';
  if (scenario.broker === 'redis') {
    redis = await startRedis();
    brokerUrl = redis.url;
  } else if (scenario.broker === 'cluster') {
    cluster = await startRedisCluster(3, 1);
    brokerUrl = cluster.url;
  }
  onCleanup(() => {
    for (const r of [redis, ...(cluster?.nodes ?? [])]) void r?.kill();
  });
  const nodes: HeraldNode[] = [];
  try {
    for (let i = 0; i < scenario.nodes; i++) nodes.push(await HeraldNode.start(brokerUrl, scenario.nodeArgs ?? []));
    const sampler = setInterval(() => nodes.forEach((n) => n.sample()), 250);
    try {
      return await run(name, opts, scenario, { redis, cluster, nodes });
    } finally {
      clearInterval(sampler);
    }
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
    await redis?.stop();
    await cluster?.stop();
  }
}

async function run(
  name: string,
  opts: ChaosOptions,
  scenario: StreamScenario,
  env: { redis: RedisProcess | undefined; cluster: RedisClusterProcesses | undefined; nodes: HeraldNode[] },
): Promise<RunResult> {
  const { nodes } = env;
  const channels = scenario.channels ?? Array.from({ length: opts.channels }, (_, i) => `chaos.${i}`);
  await Promise.all(nodes.map((n) => n.collectGarbage()));
  const before = await Promise.all(nodes.map(async (n) => (await counts(n)) as Counts));
  const progress = (s: string): void => {
    if (!opts.json) console.error(`chaos ${name}: ${s}`);
  };

  progress(`${opts.subscribers} subscribers (${opts.kinds.join(', ')}) on ${channels.length} channels, ${nodes.length} node(s)`);
  const fleets = await Fleets.start({
    upstreams: nodes.map((n) => n.url), kinds: opts.kinds, channels, subscribers: opts.subscribers,
    perProcess: opts.perProcess, spreadAddresses: scenario.spreadAddresses ?? false,
  });
  try {
    // Polls are live once answered, so publish a warm-up message now and then until every subscriber is live.
    const deadline = Date.now() + 120_000;
    let s = await fleets.status();
    while (s.live < s.total && Date.now() < deadline) {
      await warmUp(nodes[0]!.url, channels);
      s = await fleets.waitFor((x) => x.live >= x.total, 1000);
    }
    if (s.live < s.total) throw new Error(`only ${s.live} of ${s.total} subscribers connected within 120 s`);
    progress(`all ${s.total} subscribers live in ${fleets.processes} processes; publishing ${opts.rate}/s`);

    const publisher = new Publisher({
      urls: () => nodes.filter((n) => n.running).map((n) => n.url),
      channels,
      rate: opts.rate,
      padding: scenario.padding ?? 0,
    });
    const began = Date.now();
    const ctx: Ctx = {
      opts, redis: env.redis, cluster: env.cluster, nodes, fleets, publisher,
      notes: [], extra: {}, failures: [],
      at: () => `+${((Date.now() - began) / 1000).toFixed(1)} s`,
    };
    let faultEnd: number | undefined;
    try {
      await sleep(Math.min(3000, opts.durationMs / 4));
      faultEnd = await scenario.fault(ctx);
      // Publish on until every subscriber delivered a message published after the fault, and at least --duration.
      let firstAfter = publisher.firstAckedAfter(faultEnd ?? 0);
      const catchUpDeadline = Date.now() + 60_000;
      while (Date.now() < catchUpDeadline) {
        firstAfter = publisher.firstAckedAfter(faultEnd ?? 0);
        if (Object.keys(firstAfter).length === channels.length) {
          const st = await fleets.status(firstAfter);
          if (st.reached >= st.total - st.gaveUp) break;
        }
        await sleep(250);
      }
      const rest = began + opts.durationMs - Date.now();
      if (rest > 0) await sleep(rest);
    } finally {
      await publisher.stop();
    }
    const settled = await fleets.waitFor((x) => x.reached >= x.total - x.gaveUp, 30_000, publisher.last());
    if (settled.reached < settled.total) ctx.notes.push(`${settled.total - settled.reached} subscribers never delivered their channel's last acknowledged message`);
    const kinds = await fleets.report({
      type: 'report',
      acked: publisher.ackedRecord(),
      firstAfter: faultEnd === undefined ? {} : publisher.firstAckedAfter(faultEnd),
      ...(faultEnd === undefined ? {} : { faultEnd }),
    });
    await fleets.close();
    await scenario.afterClients?.(ctx);
    const after = await returnToZero(nodes, before);
    const result: RunResult = {
      scenario: name, options: opts, kinds, publish: publisher.figures,
      nodes: nodes.map((n, i) => ({ url: n.url, peakRssBytes: n.peakRss, peakFds: n.peakFds, before: before[i]!, after: after[i] })),
      notes: ctx.notes, extra: ctx.extra, failures: [...ctx.failures, ...judge(kinds, nodes, before, after), ...judgePublish(publisher.figures)],
      fleetProcesses: fleets.processes,
    };
    return result;
  } finally {
    fleets.kill();
  }
}

/** Wait (up to 20 s) until every running node is back to no sessions, no channels and its starting descriptors. */
async function returnToZero(nodes: readonly HeraldNode[], before: readonly Counts[]): Promise<(Counts | undefined)[]> {
  const deadline = Date.now() + 20_000;
  await Promise.all(nodes.map((n) => n.collectGarbage()));
  for (;;) {
    const now = await Promise.all(nodes.map((n) => counts(n)));
    const zero = now.every((c, i) => c === undefined || isZero(c, before[i]!));
    if (zero || Date.now() > deadline) return now;
    await sleep(250);
  }
}

function isZero(c: Counts, start: Counts): boolean {
  return c.sessions === 0 && c.channels === 0 && c.brokerChannels === 0 && c.pollWaiting === 0 && c.fds <= start.fds + FD_SLACK;
}

/** Issue 12: a publish refused during an outage says when to retry. */
function judgePublish(p: PublishFigures): string[] {
  const bare = p.unavailable - p.unavailableWithRetryAfter;
  return bare > 0 ? [`publish: ${bare} answers 503 without Retry-After`] : [];
}

function judge(kinds: Record<string, MergedKind>, nodes: readonly HeraldNode[], before: readonly Counts[], after: readonly (Counts | undefined)[]): string[] {
  const out: string[] = [];
  for (const [kind, k] of Object.entries(kinds)) {
    if (k.lost > 0) out.push(`${kind}: ${k.lost} acknowledged messages lost (${k.lostClients} clients)`);
    if (k.behind > 0) out.push(`${kind}: ${k.behind} acknowledged messages never delivered after the client's last (${k.behindClients} clients)`);
    if (k.duplicates > 0) out.push(`${kind}: ${k.duplicates} duplicates`);
    if (k.outOfOrder > 0) out.push(`${kind}: ${k.outOfOrder} out of order`);
    if (k.gaveUp > 0) out.push(`${kind}: ${k.gaveUp} clients gave up`);
    if (k.fatal > 0) out.push(`${kind}: ${k.fatal} answers a client may not retry`);
  }
  after.forEach((c, i) => {
    if (c !== undefined && !isZero(c, before[i]!)) {
      out.push(
        `${nodes[i]!.url}: not back to zero: sessions ${c.sessions}, channels ${c.channels}, broker channels ${c.brokerChannels}, ` +
          `polls ${c.pollWaiting}, descriptors ${c.fds} (started with ${before[i]!.fds})`,
      );
    }
  });
  return out;
}
