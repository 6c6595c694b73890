/**
 * Redis rolls back (issue 13 items 1 and 7), with real redis-server processes and a client per transport written from
 * docs/protocol.md:
 * - a restart from an older RDB snapshot, and a failover to a replica that missed writes: a client resuming from the
 *   last acknowledged id (6-E) gets an explicit reload and then the new epoch's messages, never just "7";
 * - a restart without persistence while the new epoch already holds messages: reload, then all of them (no skip);
 * - a live client whose channel starts a new epoch whose first messages it did not see: reload, then the epoch.
 * Every case counts, per acknowledged message and per subscriber: exactly once, or covered by an explicit reload.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HISTORY_LIBRARY } from '../src/broker/redis-history.js';
import { parseMessageId } from '../src/protocol/message-id.js';
import { account, resume, TRANSPORTS, type Acked, type Line, type Resumer } from './helpers/resumers.js';
import { startNodeOnRedis, startRedis } from './helpers/redis.js';
import { eventually, publish, type TestServer } from './helpers/server.js';
import { startSwitchProxy } from './helpers/switch-proxy.js';
import { startTcpProxy } from './helpers/tcp-proxy.js';

const FAST = { historySize: 1000, historyTtlSeconds: 120, redisTimeoutMs: 1000, redisProbeIntervalMs: 200, pollTimeoutSeconds: 1 };

/** Publish through the node until it is acknowledged (the node may still be reconnecting), and remember the id. */
async function publishAcked(node: TestServer, channel: string, data: string, acked: Acked[]): Promise<string> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await publish(node.url, { channel, data });
    if (r.status === 200) {
      const id = (r.body as { id: string }).id;
      acked.push({ data, id });
      return id;
    }
    if (Date.now() > deadline) throw new Error(`publish ${data}: ${r.status} ${JSON.stringify(r.body)}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

const messages = (r: Resumer): Line[] => r.lines().filter((l) => l[0] === 'message');

/** Clients resuming from `since` on every transport must get exactly: a reload to 0-<epoch of `next`>, then `next`. */
async function expectReloadThen(node: TestServer, channel: string, since: string, next: Acked[]): Promise<void> {
  const epoch = parseMessageId(next[0]!.id)!.epoch;
  const clients = await Promise.all(TRANSPORTS.map((t) => resume(t, node.url, channel, since)));
  try {
    for (const c of clients) {
      await eventually(() => messages(c).length >= next.length, 5000, `${c.transport}: the new epoch's messages`);
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(
        c.lines(),
        [['reload', channel, 'epoch', `0-${epoch}`], ...next.map((m): Line => ['message', channel, m.data, m.id])],
        `${c.transport} resuming from ${since}`,
      );
    }
  } finally {
    for (const c of clients) c.close();
  }
}

/** Live clients (connected through the fault) got every acknowledged message once or a reload covering it. */
async function expectLiveAccounted(live: readonly Resumer[], acked: Acked[]): Promise<void> {
  const last = acked[acked.length - 1]!;
  for (const c of live) {
    await eventually(() => messages(c).some((l) => l[3] === last.id), 10_000, `${c.transport}: the last message`);
    const { covered } = account(c, acked);
    assert.ok(c.lines().some((l) => l[0] === 'reload'), `${c.transport}: told to reload`);
    assert.equal(covered, 0, `${c.transport}: every message reached the live client before the fault`);
  }
}

/**
 * After Redis lost 4..6: publish 7 and 8, which must start a new epoch at offset 1 (`why`: the assertion's message),
 * then a client resuming from 6-E gets reload and the new epoch, and every live client accounts for every message.
 */
async function publishAfterRollback(
  node: TestServer,
  ch: string,
  six: string,
  acked: Acked[],
  live: readonly Resumer[],
  why: string,
): Promise<void> {
  const next: Acked[] = [];
  for (let i = 7; i <= 8; i++) await publishAcked(node, ch, `m${i}`, next);
  acked.push(...next);
  const seven = parseMessageId(next[0]!.id)!;
  assert.equal(seven.offset, 1, why);
  assert.notEqual(seven.epoch, parseMessageId(six)!.epoch, 'a new epoch');
  await expectReloadThen(node, ch, six, next);
  await expectLiveAccounted(live, acked);
}

test('a restart from an older RDB snapshot: resuming from 6-E gets reload, then the new epoch (every transport)', async () => {
  const redis = await startRedis();
  let node: TestServer | undefined;
  const live: Resumer[] = [];
  try {
    node = await startNodeOnRedis(redis.url, FAST);
    const ch = 'rollback.rdb';
    live.push(...(await Promise.all(TRANSPORTS.map((t) => resume(t, node!.url, ch, '')))));
    await eventually(() => live.every((c) => c.position() !== ''), 5000, 'every live client has a position');
    const acked: Acked[] = [];
    for (let i = 1; i <= 3; i++) await publishAcked(node, ch, `m${i}`, acked);
    redis.cli('SAVE');
    for (let i = 4; i <= 6; i++) await publishAcked(node, ch, `m${i}`, acked);
    const six = acked[5]!.id;
    await eventually(() => live.every((c) => messages(c).length === 6), 5000, 'six live messages');
    // SIGKILL after the snapshot: 4..6 were acknowledged but are not in it.
    await redis.restart();
    assert.equal(redis.cli('HGET', `herald:m:${ch}`, 'o'), '3', 'Redis came back from the older snapshot');
    await eventually(() => node!.server.node.isReady(), 10_000, 'node ready again');
    await publishAfterRollback(node, ch, six, acked, live, 'the rolled-back offsets are not handed out again');
  } finally {
    for (const c of live) c.close();
    await node?.close();
    await redis.stop();
  }
});

test('a failover to a replica that missed writes: resuming from 6-E gets reload, then the new epoch (every transport)', async () => {
  const master = await startRedis();
  // The replica replicates through a proxy that the test freezes: it lags behind from then on.
  const link = await startTcpProxy(master.port);
  const replica = await startRedis({ extraArgs: ['--replicaof', '127.0.0.1', String(link.port)] });
  // Herald reaches "the master" at one address, which the failover moves to the replica.
  const front = await startSwitchProxy(master.port);
  let node: TestServer | undefined;
  const live: Resumer[] = [];
  try {
    await eventually(() => /master_link_status:up/.test(replica.cli('INFO', 'replication')), 10_000, 'replica in sync');
    node = await startNodeOnRedis(front.url, FAST);
    const ch = 'rollback.failover';
    live.push(...(await Promise.all(TRANSPORTS.map((t) => resume(t, node!.url, ch, '')))));
    await eventually(() => live.every((c) => c.position() !== ''), 5000, 'every live client has a position');
    const acked: Acked[] = [];
    for (let i = 1; i <= 3; i++) await publishAcked(node, ch, `m${i}`, acked);
    await eventually(() => replica.cli('HGET', `herald:m:${ch}`, 'o') === '3', 5000, 'the replica has 1..3');
    link.freeze();
    for (let i = 4; i <= 6; i++) await publishAcked(node, ch, `m${i}`, acked);
    const six = acked[5]!.id;
    await eventually(() => live.every((c) => messages(c).length === 6), 5000, 'six live messages');
    assert.equal(replica.cli('HGET', `herald:m:${ch}`, 'o'), '3', 'the replica missed 4..6');
    // The master dies; the replica is promoted and takes over its address.
    await master.kill();
    replica.cli('REPLICAOF', 'NO', 'ONE');
    front.switchTo(replica.port);
    await publishAfterRollback(node, ch, six, acked, live, 'the lost offsets are not handed out again');
  } finally {
    for (const c of live) c.close();
    await node?.close();
    await front.close();
    await link.close();
    await replica.stop();
    await master.stop();
  }
});

test('a restart without persistence while the new epoch already holds messages: reload, then all of them', async () => {
  const redis = await startRedis();
  const link = await startTcpProxy(redis.port);
  let node: TestServer | undefined;
  const live: Resumer[] = [];
  try {
    node = await startNodeOnRedis(`redis://127.0.0.1:${link.port}`, FAST);
    const ch = 'rollback.empty';
    live.push(...(await Promise.all(TRANSPORTS.map((t) => resume(t, node!.url, ch, '')))));
    await eventually(() => live.every((c) => c.position() !== ''), 5000, 'every live client has a position');
    const acked: Acked[] = [];
    for (let i = 1; i <= 5; i++) await publishAcked(node, ch, `m${i}`, acked);
    const five = acked[4]!.id;
    await eventually(() => live.every((c) => messages(c).length === 5), 5000, 'five live messages');
    // The node is cut off while Redis restarts empty and a backend publishes three messages straight to Redis.
    link.freeze();
    await redis.restart();
    // The restarted Redis has no functions either: the backend loads Herald's library (docs/protocol.md).
    redis.cli('FUNCTION', 'LOAD', 'REPLACE', HISTORY_LIBRARY);
    const next: Acked[] = [];
    for (let i = 6; i <= 8; i++) {
      const id = redis.cli('FCALL', 'herald_publish', '2', `herald:h:${ch}`, `herald:m:${ch}`, ch, `m${i}`, '1000', '120000', '3600000', 'PUBLISH');
      assert.match(id, /^\d+-[0-9a-z]+$/);
      next.push({ data: `m${i}`, id });
    }
    link.thaw();
    const last = await publishAcked(node, ch, 'm9', next);
    acked.push(...next);
    assert.equal(parseMessageId(last)!.offset, 4, 'the new epoch holds 6..9');
    await expectReloadThen(node, ch, five, next);
    for (const c of live) {
      await eventually(() => messages(c).some((l) => l[3] === last), 10_000, `${c.transport}: the last message`);
      account(c, acked);
      const lines = c.lines();
      const reload = lines.findIndex((l) => l[0] === 'reload');
      assert.ok(reload > 0, `${c.transport}: told to reload`);
      assert.deepEqual(
        lines.slice(reload + 1).map((l) => l[2]),
        ['m6', 'm7', 'm8', 'm9'],
        `${c.transport}: the new epoch's messages after the reload, none skipped`,
      );
    }
  } finally {
    for (const c of live) c.close();
    await node?.close();
    await link.close();
    await redis.stop();
  }
});

test("a live client whose channel starts an epoch it saw no beginning of: reload, then the epoch from its start", async () => {
  const redis = await startRedis();
  let node: TestServer | undefined;
  const live: Resumer[] = [];
  try {
    node = await startNodeOnRedis(redis.url, FAST);
    const ch = 'rollback.live';
    live.push(...(await Promise.all(TRANSPORTS.map((t) => resume(t, node!.url, ch, '')))));
    await eventually(() => live.every((c) => c.position() !== ''), 5000, 'every live client has a position');
    const acked: Acked[] = [];
    for (let i = 1; i <= 3; i++) await publishAcked(node, ch, `m${i}`, acked);
    await eventually(() => live.every((c) => messages(c).length === 3), 5000, 'three live messages');
    // The channel's position goes (as when it expires), and a backend publishes the new epoch's first message
    // without pub/sub: the live clients first see its second message.
    redis.cli('DEL', `herald:m:${ch}`);
    const first = redis.cli('FCALL', 'herald_publish', '2', `herald:h:${ch}`, `herald:m:${ch}`, ch, 'm4', '1000', '120000', '3600000', 'NONE');
    const next: Acked[] = [{ data: 'm4', id: first }];
    await publishAcked(node, ch, 'm5', next);
    acked.push(...next);
    for (const c of live) {
      await eventually(() => messages(c).length >= 5, 5000, `${c.transport}: the new epoch`);
      await new Promise((r) => setTimeout(r, 50));
      account(c, acked);
      const epoch = parseMessageId(first)!.epoch;
      assert.deepEqual(
        c.lines().slice(-3),
        [['reload', ch, 'epoch', `0-${epoch}`], ['message', ch, 'm4', first], ['message', ch, 'm5', next[1]!.id]],
        c.transport,
      );
    }
    assert.ok(node.server.node.metrics.recoveries.get({ cause: 'epoch' }) >= TRANSPORTS.length, 'read from history');
  } finally {
    for (const c of live) c.close();
    await node?.close();
    await redis.stop();
  }
});

test('resume reads of channels without history write nothing to Redis; their stamps do not outlive a restart', async () => {
  const redis = await startRedis();
  let node: TestServer | undefined;
  try {
    node = await startNodeOnRedis(redis.url, FAST);
    for (let i = 0; i < 40; i++) {
      const since = i % 3 === 0 ? '' : `${i}-oldepoch`;
      const c = await resume(TRANSPORTS[i % TRANSPORTS.length]!, node.url, `unknown.${i}`, since);
      try {
        await eventually(() => c.position() !== since, 5000, 'a position');
        assert.match(c.position(), /^0-S[0-9a-z]+$/, `${c.transport}: a read stamp`);
      } finally {
        c.close();
      }
    }
    // Reading creates no key. (--dev keeps presence on every channel: a member's entries are written while it
    // is subscribed and removed, index included, once it leaves; that removal is batched, hence the wait.)
    await eventually(() => redis.cli('DBSIZE') === '0', 3000, `no key left by reading: ${redis.cli('KEYS', '*')}`);

    // A client leaves with the stamp of a quiet channel; a message is published; Redis restarts and loses it; a new
    // message comes. The stamp was issued under the old replication id: it must not vouch for the new epoch.
    const ch = 'rollback.stamp';
    const quiet = await resume('sub', node.url, ch, '');
    await eventually(() => quiet.position() !== '', 5000, 'a position');
    const stamp = quiet.position();
    quiet.close();
    const acked: Acked[] = [];
    await publishAcked(node, ch, 'lost', acked);
    await redis.restart();
    await eventually(() => node!.server.node.isReady(), 10_000, 'node ready again');
    const next: Acked[] = [];
    await publishAcked(node, ch, 'after', next);
    await expectReloadThen(node, ch, stamp, next);
    // Within the same dataset the stamp of a quiet channel does vouch: no reload for the first message after it.
    const quiet2 = await resume('sub', node.url, `${ch}.2`, '');
    await eventually(() => quiet2.position() !== '', 5000, 'a position');
    quiet2.close();
    const first: Acked[] = [];
    await publishAcked(node, `${ch}.2`, 'first', first);
    const back = await resume('sse', node.url, `${ch}.2`, quiet2.position());
    await eventually(() => messages(back).length === 1, 5000, 'the first message');
    assert.deepEqual(back.lines(), [['message', `${ch}.2`, 'first', first[0]!.id]]);
    back.close();
  } finally {
    await node?.close();
    await redis.stop();
  }
});
