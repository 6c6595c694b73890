/**
 * The fault scenarios: Redis restarted, frozen or killed; a node or a worker killed; a Redis Cluster master failover;
 * a reconnect storm. Each is a StreamScenario: the harness runs the subscribers, the publisher and the accounting.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { sleep } from '../../bench/clock.js';
import { masterPortOfSlot } from '../../test/helpers/redis.js';
import type { Ctx, StreamScenario } from '../harness.js';

const redisOf = (ctx: Ctx) => {
  if (!ctx.redis) throw new Error('this scenario needs Redis');
  return ctx.redis;
};

export const redisRestart: StreamScenario = {
  broker: 'redis',
  nodes: 1,
  async fault(ctx) {
    const redis = redisOf(ctx);
    ctx.notes.push(`${ctx.at()} Redis SHUTDOWN NOSAVE (a restart: it comes back empty, a new history epoch)`);
    try {
      redis.cli('SHUTDOWN', 'NOSAVE');
    } catch {
      /* redis-cli reports the connection it lost */
    }
    const end = Date.now();
    await redis.restart();
    ctx.notes.push(`${ctx.at()} Redis answers again`);
    return end;
  },
};

export const redisPause: StreamScenario = {
  broker: 'redis',
  nodes: 1,
  async fault(ctx) {
    const redis = redisOf(ctx);
    ctx.notes.push(`${ctx.at()} Redis SIGSTOP for ${ctx.opts.outageMs / 1000} s`);
    redis.freeze();
    await sleep(ctx.opts.outageMs);
    const end = Date.now();
    redis.thaw();
    ctx.notes.push(`${ctx.at()} Redis SIGCONT`);
    return end;
  },
};

export const redisKill: StreamScenario = {
  broker: 'redis',
  nodes: 1,
  async fault(ctx) {
    const redis = redisOf(ctx);
    ctx.notes.push(`${ctx.at()} Redis SIGKILL, down for ${ctx.opts.outageMs / 1000} s`);
    await redis.kill();
    await sleep(ctx.opts.outageMs);
    const end = Date.now();
    await redis.restart();
    ctx.notes.push(`${ctx.at()} Redis started again (empty)`);
    return end;
  },
};

export const nodeKill: StreamScenario = {
  broker: 'redis',
  nodes: 2,
  async fault(ctx) {
    const victim = ctx.nodes[1]!;
    ctx.notes.push(`${ctx.at()} SIGKILL node ${victim.url}; its clients reconnect through the balancer to ${ctx.nodes[0]!.url}`);
    await victim.kill('SIGKILL');
    return Date.now();
  },
};

export const storm: StreamScenario = {
  broker: 'redis',
  nodes: 1,
  spreadAddresses: true,
  async fault(ctx) {
    const node = ctx.nodes[0]!;
    ctx.extra['peak RSS before the restart'] = `${(node.peakRss / 1048576).toFixed(0)} MB`;
    ctx.notes.push(`${ctx.at()} SIGKILL the node, restart it on the same port`);
    await node.kill('SIGKILL');
    const killedAt = Date.now();
    node.resetPeaks();
    await node.restart();
    const upAt = Date.now();
    ctx.notes.push(`${ctx.at()} node ready again (${upAt - killedAt} ms after the kill)`);
    const s = await ctx.fleets.waitFor((x) => x.live >= x.total - x.gaveUp, 120_000);
    const allAt = Date.now();
    ctx.extra['storm: all reconnected after the node was ready'] = `${allAt - upAt} ms (${s.live} of ${s.total} live)`;
    ctx.extra['storm: peak RSS of the restarted node'] = `${(node.peakRss / 1048576).toFixed(0)} MB`;
    ctx.extra['storm: peak descriptors of the restarted node'] = node.peakFds;
    if (s.live < s.total) ctx.failures.push(`storm: ${s.total - s.live} clients not back within 120 s`);
    return upAt;
  },
};

export const clusterFailover: StreamScenario = {
  broker: 'cluster',
  nodes: 1,
  async fault(ctx) {
    const cluster = ctx.cluster!;
    // redis-cli --cluster create makes the first three servers the masters; the first one serves slot 0.
    const victim = cluster.nodes[0]!;
    const witness = cluster.nodes[1]!;
    ctx.notes.push(`${ctx.at()} SIGKILL the Redis Cluster master on port ${victim.port}`);
    await victim.kill();
    const killedAt = Date.now();
    const deadline = killedAt + 60_000;
    for (;;) {
      let promoted = false;
      try {
        const owner = masterPortOfSlot(witness, 0);
        promoted = owner !== undefined && owner !== victim.port && /cluster_state:ok/.test(witness.cli('CLUSTER', 'INFO'));
      } catch {
        /* the witness is busy: ask again */
      }
      if (promoted) break;
      if (Date.now() > deadline) {
        ctx.failures.push('cluster-failover: no replica took over within 60 s');
        break;
      }
      await sleep(100);
    }
    const end = Date.now();
    ctx.notes.push(`${ctx.at()} a replica serves the dead master's slots (${end - killedAt} ms after the kill)`);
    ctx.extra['failover took'] = `${end - killedAt} ms`;
    return end;
  },
};

/** The pids of `pid`'s children (from /proc/*\/stat). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(name));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

/**
 * `herald serve --workers 3` on the embedded broker (issue 8): SIGKILL one worker under the publisher; its clients
 * resume on the others from the primary's one history (nothing lost), and the primary restarts it.
 */
export const workerKill: StreamScenario = {
  broker: 'memory',
  nodes: 1,
  nodeArgs: ['--workers', '3'],
  async fault(ctx) {
    const workers = childrenOf(ctx.nodes[0]!.pid ?? 0);
    const victim = workers[0];
    if (victim === undefined) {
      ctx.failures.push('worker-kill: the node has no worker processes');
      return undefined;
    }
    ctx.notes.push(`${ctx.at()} SIGKILL worker ${victim} of ${workers.length}`);
    process.kill(victim, 'SIGKILL');
    const end = Date.now();
    // The primary restarts it (with backoff): the machine is whole again once it has as many workers as before.
    const deadline = end + 30_000;
    while (childrenOf(ctx.nodes[0]!.pid ?? 0).filter((pid) => pid !== victim).length < workers.length) {
      if (Date.now() > deadline) {
        ctx.failures.push('worker-kill: the killed worker was not restarted within 30 s');
        break;
      }
      await sleep(50);
    }
    ctx.notes.push(`${ctx.at()} the primary runs ${workers.length} workers again`);
    return end;
  },
};
