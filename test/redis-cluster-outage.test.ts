/**
 * Redis Cluster seen from a Herald node while one shard is gone (issue 13, item 2): a master down for 15 s, a master
 * failed over to its replica, and SIGTERM in the middle of an outage.
 *
 * Measured from outside: CLIENT LIST on every master, filtered by the node's client name, once a second; /sub
 * subscribers (with ids) on two channels of every shard; a publisher going round all channels through the HTTP API.
 * Every acknowledged publish is checked at every subscriber of its channel: received exactly once, or covered by a
 * `reload` line of that channel that arrived after the publish was acknowledged.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test, type TestContext } from 'node:test';
import type { RedisBroker } from '../src/broker/redis.js';
import { slotOf } from '../src/broker/redis-slot.js';
import { cleanEnv, killAll, startHerald } from './helpers/cli.js';
import {
  countClients,
  masterPortOfSlot,
  startNodeOnRedis,
  startRedisCluster,
  type RedisClusterProcesses,
  type RedisProcess,
} from './helpers/redis.js';
import { eventually, openStream, publish, type LineStream, type TestServer } from './helpers/server.js';

/** Healthy shards must keep taking writes (FCALL) while one has no master: the setting deployment.md recommends. */
const PARTIAL_COVERAGE = ['--cluster-require-full-coverage', 'no'];
const OUTAGE_S = 15;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let cluster: RedisClusterProcesses;
before(async () => {
  cluster = await startRedisCluster(3, 0, PARTIAL_COVERAGE);
});
after(async () => {
  await killAll();
  await cluster?.stop();
});

/** `perMaster` channel names for each master, keyed by the master's port. */
function channelsByMaster(c: RedisClusterProcesses, perMaster: number, prefix: string): Map<number, string[]> {
  const asked = c.nodes.find((n) => n.running) as RedisProcess;
  const masters = c.nodes.filter((n) => n.running && n.cli('ROLE').startsWith('master')).length;
  const out = new Map<number, string[]>();
  for (let i = 0; out.size < masters || [...out.values()].some((l) => l.length < perMaster); i++) {
    const name = `${prefix}-${i}`;
    const port = masterPortOfSlot(asked, slotOf(name));
    if (port === undefined) continue;
    const list = out.get(port) ?? [];
    if (list.length < perMaster) list.push(name);
    out.set(port, list);
  }
  return out;
}

interface Ack {
  readonly channel: string;
  readonly data: string;
  readonly at: number;
  /** Per subscriber of the channel: how many lines it had received when the publish was acknowledged. */
  readonly marks: number[];
}

/** Subscribers, a publisher going round every channel, and the accounting of what each subscriber got. */
class Traffic {
  readonly subs = new Map<string, LineStream[]>();
  readonly acks: Ack[] = [];
  /** Per channel: publishes answered other than 200, and the slowest such answer. */
  readonly refused = new Map<string, number>();
  slowestRefusalMs = 0;
  /** The first refusals, with their answers (for a failing assertion's message). */
  readonly reasons: string[] = [];
  private startedAt = 0;
  /** Per channel: when a publish last failed, and when one first succeeded after that. */
  readonly lastFailure = new Map<string, number>();
  readonly firstSuccessAfterFailure = new Map<string, number>();
  private running = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly url: string,
    readonly channels: readonly string[],
  ) {}

  async subscribe(perChannel: number): Promise<void> {
    for (const c of this.channels) {
      const streams = await Promise.all(
        Array.from({ length: perChannel }, () => openStream(`${this.url}/sub?channel=${encodeURIComponent(c)}&since=`)),
      );
      for (const s of streams) assert.equal(s.status, 200, `subscribe ${c}: ${s.lines.join('\n')}`);
      this.subs.set(c, streams);
    }
  }

  start(): void {
    this.running = true;
    this.startedAt = Date.now();
    this.loop = (async () => {
      for (let i = 0; this.running; i++) {
        const channel = this.channels[i % this.channels.length] as string;
        const data = `${channel}:${i}`;
        const t0 = Date.now();
        const res = await publish(this.url, { channel, data });
        const now = Date.now();
        if (res.status === 200) {
          const marks = (this.subs.get(channel) ?? []).map((s) => s.lines.length);
          this.acks.push({ channel, data, at: now, marks });
          if (this.lastFailure.has(channel) && !this.firstSuccessAfterFailure.has(channel)) {
            this.firstSuccessAfterFailure.set(channel, now);
          }
        } else {
          this.refused.set(channel, (this.refused.get(channel) ?? 0) + 1);
          if (this.reasons.length < 5) this.reasons.push(`${channel} +${now - this.startedAt} ms: ${res.status} ${JSON.stringify(res.body)}`);
          this.slowestRefusalMs = Math.max(this.slowestRefusalMs, now - t0);
          this.lastFailure.set(channel, now);
          this.firstSuccessAfterFailure.delete(channel);
        }
        await sleep(5);
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  /** Per subscriber: how each acknowledged message of its channel fared. Throws on any loss or duplicate. */
  account(): { exact: number; reloaded: number; reloadsOnChannels: Set<string> } {
    let exact = 0;
    let reloaded = 0;
    const problems: string[] = [];
    const reloadsOnChannels = new Set<string>();
    for (const [channel, streams] of this.subs) {
      streams.forEach((s, k) => {
        const got = new Map<string, number>();
        const reloadAt: number[] = [];
        s.lines.forEach((line, index) => {
          if (!line.startsWith('[')) return;
          const parsed = JSON.parse(line) as unknown[];
          if (parsed[0] === 'message' && parsed[1] === channel) got.set(String(parsed[2]), (got.get(String(parsed[2])) ?? 0) + 1);
          if (parsed[0] === 'reload' && parsed[1] === channel) {
            reloadAt.push(index);
            reloadsOnChannels.add(channel);
          }
        });
        for (const ack of this.acks) {
          if (ack.channel !== channel) continue;
          const n = got.get(ack.data) ?? 0;
          const mark = ack.marks[k] ?? 0;
          if (n === 1) exact++;
          else if (n === 0 && reloadAt.some((i) => i >= mark)) reloaded++;
          else problems.push(`${channel} subscriber ${k}: ${ack.data} received ${n} times`);
        }
      });
    }
    assert.deepEqual(problems.slice(0, 10), [], `${problems.length} acknowledged messages lost or duplicated`);
    return { exact, reloaded, reloadsOnChannels };
  }

  /** (message, subscriber) pairs of `channels` acknowledged before `cutoff` that the subscriber has not received. */
  undelivered(channels: ReadonlySet<string>, cutoff: number): number {
    let missing = 0;
    for (const ack of this.acks) {
      if (ack.at >= cutoff || !channels.has(ack.channel)) continue;
      for (const s of this.subs.get(ack.channel) ?? []) if (!s.lines.some((l) => l.includes(JSON.stringify(ack.data)))) missing++;
    }
    return missing;
  }

  /** Every subscriber has every acknowledged message of its channel, or a reload after it. */
  settled(): boolean {
    try {
      this.account();
      return true;
    } catch {
      return false;
    }
  }

  close(): void {
    for (const streams of this.subs.values()) for (const s of streams) s.close();
  }
}

async function readyz(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${url}/readyz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

function nameOf(node: TestServer): string {
  return (node.server.node.broker as RedisBroker).clientName;
}

test(`one master down for ${OUTAGE_S} s: at most 2 connections per surviving master every second, the other shards publish and deliver, back to 2 per master`, async (t: TestContext) => {
  // brokerWaitMs 1000: a new subscription to a dead shard's channel waits 1 s, then gets broker_unavailable.
  const node = await startNodeOnRedis(cluster.url, { historySize: 100, redisTimeoutMs: 2000, redisProbeIntervalMs: 250, brokerWaitMs: 1000 });
  const byMaster = channelsByMaster(cluster, 2, 'down');
  const traffic = new Traffic(node.url, [...byMaster.values()].flat());
  try {
    const name = nameOf(node);
    const victim = cluster.nodes[1] as RedisProcess;
    const survivors = cluster.nodes.filter((n) => n !== victim);
    const dead = new Set(byMaster.get(victim.port));
    for (const m of cluster.nodes) assert.equal(countClients(m, name), 2, `2 connections on :${m.port} before`);

    await traffic.subscribe(2);
    traffic.start();
    await sleep(1000);
    await victim.kill();
    const killedAt = Date.now();

    const perSecond: number[][] = [];
    let degraded = false;
    for (let s = 0; s < OUTAGE_S; s++) {
      await sleep(1000);
      const counts = survivors.map((m) => countClients(m, name));
      perSecond.push(counts);
      for (const [i, n] of counts.entries()) {
        assert.ok(n <= 2, `second ${s + 1}: ${n} connections on surviving master :${survivors[i]?.port}`);
      }
      // Healthy shards keep delivering during the outage, not only after it.
      const healthy = new Set(traffic.channels.filter((c) => !dead.has(c)));
      assert.equal(traffic.undelivered(healthy, Date.now() - 1000), 0, `second ${s + 1}: healthy shards' messages undelivered`);
      if (s === 4) {
        // A new subscription to a channel the node does not hold yet: refused on the dead shard (503), taken on the
        // others. (One to a channel it holds joins the node's subscription and waits with the others.)
        const fresh = channelsByMaster(cluster, 1, 'fresh');
        const freshHealthy = [...fresh].find(([port]) => port !== victim.port)?.[1][0] ?? '';
        const [onDead, onHealthy] = await Promise.all([
          openStream(`${node.url}/sub?channel=${fresh.get(victim.port)?.[0] ?? ''}`),
          openStream(`${node.url}/sub?channel=${freshHealthy}`),
        ]);
        onDead.close();
        onHealthy.close();
        assert.equal(onDead.status, 503, 'a new subscription to a dead shard channel');
        assert.equal((JSON.parse(onDead.lines.join('')) as { error: { code: string } }).error.code, 'broker_unavailable');
        assert.equal(onDead.headers['retry-after'], '1');
        assert.equal(onHealthy.status, 200, 'a new subscription to a healthy shard channel');
      }
      const r = await readyz(node.url);
      assert.equal(r.status, 200, 'readyz stays 200 while other shards serve');
      degraded ||= r.body['broker'] === 'degraded';
    }
    assert.ok(degraded, '/readyz reported the broker degraded during the outage');
    assert.equal(node.server.node.broker.isReady(), false);
    const ackedDuringOutage = traffic.acks.filter((a) => a.at > killedAt && a.at < Date.now()).length;

    await victim.restart();
    const restartedAt = Date.now();
    await eventually(() => node.server.node.broker.isReady(), 15_000, 'every shard ready again');
    const backAfterMs = Date.now() - restartedAt;
    await sleep(1000);
    await traffic.stop();
    await eventually(() => traffic.settled(), 10_000, 'every acknowledged message delivered or reloaded');
    await eventually(() => cluster.nodes.every((m) => countClients(m, name) === 2), 5000, '2 connections per master after');

    // Healthy shards: every publish acknowledged, every message delivered exactly once, no reload.
    for (const c of traffic.channels) {
      if (!dead.has(c)) assert.equal(traffic.refused.get(c) ?? 0, 0, `publishes to ${c} (a healthy shard) refused: ${traffic.reasons.join('; ')}`);
    }
    const { exact, reloaded, reloadsOnChannels } = traffic.account();
    for (const c of reloadsOnChannels) assert.ok(dead.has(c), `reload on ${c}, a healthy shard's channel`);
    const deadRefused = [...dead].reduce((n, c) => n + (traffic.refused.get(c) ?? 0), 0);
    assert.ok(deadRefused > 0, "the dead shard's channels answered 503");
    assert.ok(traffic.slowestRefusalMs < 2000, `a refused publish took ${traffic.slowestRefusalMs} ms`);
    const peak = Math.max(...perSecond.flat());
    t.diagnostic(
      `outage ${OUTAGE_S} s: peak ${peak} connections per surviving master (per second: ${perSecond.map((c) => c.join('/')).join(' ')}); ` +
        `${ackedDuringOutage} publishes acknowledged during the outage (healthy shards), ${deadRefused} refused on the dead shard ` +
        `(slowest refusal ${traffic.slowestRefusalMs} ms); ready ${backAfterMs} ms after the restart; ` +
        `${traffic.acks.length} acknowledged, per subscriber ${exact} exactly once + ${reloaded} covered by reload, 0 lost, 0 duplicated; ` +
        `reload lines on ${reloadsOnChannels.size} of the dead shard's ${dead.size} channels (its history was lost: no persistence)`,
    );
  } finally {
    await traffic.stop();
    traffic.close();
    await node.close();
    for (const m of cluster.nodes) if (!m.running) await m.restart();
  }
});

/** GET with a connection of its own that is closed after the answer (a keep-alive socket would hold the drain). */
function getStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
  });
}

for (const outage of ['killed', 'frozen'] as const) {
  test(`SIGTERM while a master is ${outage} and its shard keeps retrying: the process exits within 2 s, every Redis socket closed`, async (t: TestContext) => {
    // Killed: every attempt is refused at once, one after the other with backoff (the case that used to pile up
    // sockets). Frozen (SIGSTOP): the kernel still completes the TCP handshake, so an attempt hangs mid-connect,
    // waiting for an answer to its first command, up to the 3 s timeout: SIGTERM lands in the middle of one.
    const child = await startHerald(
      ['--dev', '--port', '0', '--broker', cluster.url, '--redis-timeout-ms', outage === 'killed' ? '1000' : '3000', '--redis-probe-interval-ms', '200'],
      cleanEnv(),
    );
    const victim = cluster.nodes[2] as RedisProcess;
    const survivors = cluster.nodes.filter((n) => n !== victim);
    const streams: LineStream[] = [];
    try {
      for (let i = 0; i < 50 && (await getStatus(`${child.url}/readyz`)) !== 200; i++) await sleep(100);
      assert.equal(await getStatus(`${child.url}/readyz`), 200, 'child ready');
      for (const c of [...channelsByMaster(cluster, 1, 'term').values()].flat()) {
        streams.push(await openStream(`${child.url}/sub?channel=${c}`));
      }
      for (const m of cluster.nodes) assert.equal(countClients(m, 'herald-'), 2, `2 connections on :${m.port}`);

      if (outage === 'killed') await victim.kill();
      else victim.freeze();
      // The loss is seen at once (killed) or by the probe within 3.2 s (frozen); then the shard's attempts run.
      const deadline = Date.now() + 10_000;
      while (!/redis (broker )?connection lost/.test(child.stderr()) && Date.now() < deadline) await sleep(50);
      assert.match(child.stderr(), /redis (broker )?connection lost/);
      await sleep(outage === 'killed' ? 5000 : 1200);
      const before = survivors.map((m) => countClients(m, 'herald-'));
      for (const n of before) assert.ok(n <= 2, `${n} connections on a surviving master during the outage`);

      const t0 = Date.now();
      child.proc.kill('SIGTERM');
      const done = await Promise.race([child.exited, sleep(5000).then(() => undefined)]);
      const exitMs = Date.now() - t0;
      assert.ok(done, `still running ${exitMs} ms after SIGTERM`);
      assert.equal(done.code, 0, done.stderr);
      assert.ok(exitMs < 2000, `exited ${exitMs} ms after SIGTERM`);
      await eventually(() => survivors.every((m) => countClients(m, 'herald-') === 0), 2000, 'no connection left on the masters');
      t.diagnostic(
        `SIGTERM with a ${outage} master, its shard retrying: exit in ${exitMs} ms (code 0); ` +
          `connections per surviving master before ${before.join('/')}, after 0`,
      );
    } finally {
      for (const s of streams) s.close();
      child.proc.kill('SIGKILL');
      if (outage === 'killed') await victim.restart();
      else victim.thaw();
      await eventually(() => cluster.nodes.every((n) => /cluster_state:ok/.test(n.cli('CLUSTER', 'INFO'))), 10_000, 'cluster ok again');
    }
  });
}

test('failover: a master is killed and its replica takes over; the other shards never stop publishing or delivering', async (t: TestContext) => {
  const fo = await startRedisCluster(3, 1, PARTIAL_COVERAGE);
  try {
    const node = await startNodeOnRedis(fo.url, { historySize: 100, redisTimeoutMs: 2000, redisProbeIntervalMs: 250 });
    const byMaster = channelsByMaster(fo, 2, 'fo');
    const traffic = new Traffic(node.url, [...byMaster.values()].flat());
    try {
      const name = nameOf(node);
      const victim = fo.nodes.find((n) => n.cli('ROLE').startsWith('master')) as RedisProcess;
      const dead = new Set(byMaster.get(victim.port));
      await eventually(() => /slave0:.*state=online/.test(victim.cli('INFO', 'replication')), 10_000, 'replica online');
      await traffic.subscribe(2);
      traffic.start();
      await sleep(1000);
      await victim.kill();
      const killedAt = Date.now();
      const peaks = new Map<number, number>();
      // Mid-failover (the replica is promoted after ~2 s of node timeout plus an election): the other shards deliver.
      await sleep(2000);
      assert.equal(node.server.node.broker.isReady(), false, 'still failing over');
      const healthy = new Set(traffic.channels.filter((c) => !dead.has(c)));
      assert.equal(traffic.undelivered(healthy, Date.now() - 1000), 0, "healthy shards' messages undelivered mid-failover");
      await eventually(
        () => {
          for (const m of fo.nodes.filter((n) => n.running)) peaks.set(m.port, Math.max(peaks.get(m.port) ?? 0, countClients(m, name)));
          return node.server.node.broker.isReady();
        },
        20_000,
        'ready after the replica was promoted',
      );
      const failoverMs = Date.now() - killedAt;
      await sleep(1000);
      await traffic.stop();
      await eventually(() => traffic.settled(), 10_000, 'every acknowledged message delivered or reloaded');

      for (const c of traffic.channels) {
        if (!dead.has(c)) assert.equal(traffic.refused.get(c) ?? 0, 0, `publishes to ${c} (a healthy shard) refused: ${traffic.reasons.join('; ')}`);
      }
      const pauses = [...dead].map((c) => (traffic.firstSuccessAfterFailure.get(c) ?? Date.now()) - killedAt);
      const { exact, reloaded, reloadsOnChannels } = traffic.account();
      for (const c of reloadsOnChannels) assert.ok(dead.has(c), `reload on ${c}, a healthy shard's channel`);
      for (const [port, peak] of peaks) assert.ok(peak <= 2, `${peak} connections on :${port} during the failover`);
      const masters = fo.nodes.filter((n) => n.running && n.cli('ROLE').startsWith('master'));
      for (const m of masters) assert.equal(countClients(m, name), 2, `2 connections on master :${m.port}`);
      for (const r of fo.nodes.filter((n) => n.running && !masters.includes(n))) assert.equal(countClients(r, name), 0, 'none on replicas');
      t.diagnostic(
        `failover: ready ${failoverMs} ms after the kill; the dead shard's channels paused ${Math.min(...pauses)}-${Math.max(...pauses)} ms, ` +
          `the other shards 0 refused; peak ${Math.max(...peaks.values())} connections per master; ${traffic.acks.length} acknowledged, ` +
          `per subscriber ${exact} exactly once + ${reloaded} covered by reload, 0 lost, 0 duplicated`,
      );
    } finally {
      await traffic.stop();
      traffic.close();
      await node.close();
    }
  } finally {
    await fo.stop();
  }
});
