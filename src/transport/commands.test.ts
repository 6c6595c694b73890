/**
 * The /ws command protocol without a WebSocket: a real node on the in-memory broker, the real authorization built
 * from config, and a connection whose sink records the frames it is given.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Authorization } from '../auth/authorization.js';
import { signToken } from '../auth/jwt.js';
import { MemoryBroker } from '../broker/memory.js';
import { resolveConfig } from '../config.js';
import { ChannelPolicy } from '../core/channel-policy.js';
import { createNodeMetrics, MetricsRegistry } from '../core/metrics.js';
import { HeraldNode } from '../core/node.js';
import type { Session, SessionSink } from '../core/session.js';
import { HeraldError } from '../errors.js';
import type { ClientRequest } from '../protocol/ws-frames.js';
import { wsDeflateCodec } from '../protocol/ws-frames.js';
import { createLogger } from '../util/log.js';
import { ClientCommands, type CommandContext, type OpenedUrl } from './commands.js';

const SECRET = 'a-test-secret-of-at-least-32-characters!!';
const config = resolveConfig({ overrides: { dev: true, secret: SECRET, maxChannelsPerConnection: 2, logLevel: 'silent' } });
const policy = new ChannelPolicy(config);
const registry = new MetricsRegistry();
const node = new HeraldNode(new MemoryBroker(), config, createLogger('silent'), createNodeMetrics(registry), policy);
await node.start();
after(() => node.stop());
const auth = new Authorization(config, policy, () => 0, registry);
const ctx: CommandContext = {
  node,
  authorizer: auth.authorizer,
  config,
  mayPublish: (grant, channel) => auth.mayClientPublish(channel, grant) || config.dev,
  publish: (channel, data, json) => node.publish(channel, data, { source: 'ws', ...(json ? { json } : {}) }),
};

/** A connection's commands with a sink that keeps every frame as text (the payload framing: plain JSON). */
class Recorded extends ClientCommands implements SessionSink {
  readonly frames: string[] = [];
  protected unsubscribedFrame(label: string): Buffer {
    return Buffer.from(`unsubscribed ${label}`);
  }
  write(bytes: Buffer): void {
    this.frames.push(bytes.toString('utf8'));
  }
  bufferedBytes(): number {
    return 0;
  }
  destroy(): void {}
  heartbeat(): void {}
  close(): void {}
  get sessionOf(): Session {
    return this.session;
  }
}

async function connect(opened: Partial<OpenedUrl> = {}): Promise<Recorded> {
  const session = await node.openSession(wsDeflateCodec, [], { transport: 'ws', remoteAddress: '127.0.0.1', maxQueueBytes: 1 << 20 });
  const c = new Recorded(ctx, session, { targets: [], ...opened });
  session.attach(c);
  return c;
}

let nextId = 1;
type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;
function run(c: Recorded, request: WithoutId<ClientRequest>): Promise<Record<string, unknown>> {
  return c.handle({ ...request, id: nextId++ } as ClientRequest);
}

async function refused(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof HeraldError);
    return err.code;
  }
  assert.fail('expected a refusal');
}

test('subscribe, publish, unsubscribe: the subscriber gets the message once, then nothing', async () => {
  const c = await connect();
  assert.deepEqual(await run(c, { op: 'subscribe', channel: 'news' }), { channel: 'news' });
  // Subscribing twice is answered the same and joins once.
  assert.deepEqual(await run(c, { op: 'subscribe', channel: 'news' }), { channel: 'news' });
  const published = await run(c, { op: 'publish', channel: 'news', data: 'hello', json: false });
  assert.equal(typeof published['id'], 'string', 'dev keeps history: the publish answers its id');
  assert.deepEqual(c.frames.map((f) => JSON.parse(f) as unknown), [{ type: 'message', channel: 'news', data: 'hello', id: published['id'] }]);
  assert.deepEqual(await run(c, { op: 'unsubscribe', channel: 'news' }), {});
  await run(c, { op: 'publish', channel: 'news', data: 'again', json: false });
  assert.equal(c.frames.length, 1);
});

test('the channel limit, a bad channel name and presence on a channel not held are refused with their codes', async () => {
  const c = await connect();
  await run(c, { op: 'subscribe', channel: 'a' });
  await run(c, { op: 'subscribe', channel: 'b' });
  assert.deepEqual(c.sessionOf.targets.map((t) => t.label), ['a', 'b'], `limit ${config.maxChannelsPerConnection}`);
  assert.equal(await refused(run(c, { op: 'subscribe', channel: 'c' })), 'too_many_channels');
  assert.equal(await refused(run(c, { op: 'publish', channel: 'bad\u0000', data: 'x', json: false })), 'invalid_channel');
  assert.equal(await refused(run(c, { op: 'presence', channel: 'zzz' })), 'forbidden');
  assert.deepEqual(await run(c, { op: 'ping' }), {});
});

test('connect and refresh: a token is needed to refresh, and a refreshed token keeps the subject', async () => {
  const c = await connect();
  assert.equal(await refused(run(c, { op: 'refresh', token: 'x' })), 'bad_request');
  const alice = await signToken({ secret: SECRET, channels: ['room'], subject: 'alice' });
  const result = await run(c, { op: 'connect', token: alice });
  assert.equal(result['subject'], 'alice');
  assert.equal(result['client'], c.sessionOf.id);
  assert.equal(await refused(run(c, { op: 'connect', token: alice })), 'bad_request');
  const bob = await signToken({ secret: SECRET, channels: ['room'], subject: 'bob' });
  assert.equal(await refused(run(c, { op: 'refresh', token: bob })), 'forbidden');
  assert.equal(c.sessionOf.options.user, 'alice');
});

test('a refreshed token that no longer grants a channel takes it off, and the client is told', async () => {
  const both = await signToken({ secret: SECRET, channels: ['t1', 't2'], subject: 'carol' });
  const c = await connect();
  await run(c, { op: 'connect', token: both });
  await run(c, { op: 'subscribe', channel: 't1' });
  await run(c, { op: 'subscribe', channel: 't2' });
  const one = await signToken({ secret: SECRET, channels: ['t1'], subject: 'carol' });
  await run(c, { op: 'refresh', token: one });
  assert.deepEqual(c.frames, ['unsubscribed t2']);
  assert.deepEqual(c.sessionOf.targets.map((t) => t.label), ['t1']);
});
