/** ChannelPolicy (src/core/channel-policy.ts): what a channel keeps and allows, worked out from the config alone. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChannelPolicy, historyPolicy, type ChannelPolicyConfig } from '../src/core/channel-policy.js';

const base: ChannelPolicyConfig = {
  namespaces: {},
  defaultNamespace: {},
  dev: false,
  historySize: 100,
  historyTtlSeconds: 120,
  historyMetaTtlSeconds: 3600,
};

test('historyPolicy: off when size or TTL is 0; positions live at least as long as messages', () => {
  assert.equal(historyPolicy(0, 120, 3600), undefined);
  assert.equal(historyPolicy(10, 0, 3600), undefined);
  assert.deepEqual(historyPolicy(10, 60, 3600), { size: 10, ttlMs: 60_000, metaTtlMs: 3_600_000 });
  assert.deepEqual(historyPolicy(10, 600, 60), { size: 10, ttlMs: 600_000, metaTtlMs: 600_000 });
});

test('namespaceOf: a configured prefix before the first colon, else the default namespace', () => {
  const p = new ChannelPolicy({ ...base, namespaces: { chat: {}, 'a:b': {} } });
  assert.equal(p.namespaceOf('chat:room'), 'chat');
  assert.equal(p.namespaceOf('chat:room:1'), 'chat');
  assert.equal(p.namespaceOf('chat'), '', 'no colon');
  assert.equal(p.namespaceOf(':chat'), '', 'an empty prefix');
  assert.equal(p.namespaceOf('other:x'), '', 'an unconfigured prefix');
  assert.equal(p.namespaceOf('a:b:c'), '', 'the prefix ends at the first colon');
});

test('history: the node default, a namespace size, a namespace TTL over the node size, and both ways off', () => {
  const p = new ChannelPolicy({
    ...base,
    historyMetaTtlSeconds: 7200,
    namespaces: {
      sized: { historySize: 10 },
      ttl: { historyTtlSeconds: 30 },
      both: { historySize: 5, historyTtlSeconds: 9000 },
      nosize: { historySize: 0 },
      nottl: { historyTtlSeconds: 0 },
    },
  });
  assert.deepEqual(p.history('plain'), { size: 100, ttlMs: 120_000, metaTtlMs: 7_200_000 });
  assert.deepEqual(p.history('sized:x'), { size: 10, ttlMs: 300_000, metaTtlMs: 7_200_000 }, 'a size alone: 300 s TTL');
  assert.deepEqual(p.history('ttl:x'), { size: 100, ttlMs: 30_000, metaTtlMs: 7_200_000 }, 'a TTL alone: the node size');
  assert.deepEqual(p.history('both:x'), { size: 5, ttlMs: 9_000_000, metaTtlMs: 9_000_000 }, 'positions outlive messages');
  assert.equal(p.history('nosize:x'), undefined);
  assert.equal(p.history('nottl:x'), undefined);
  assert.equal(p.history('sized:a'), p.history('sized:b'), 'worked out once per namespace');
});

test('history: a node without history still gives a namespace that asks for it one, positions kept an hour', () => {
  const p = new ChannelPolicy({ ...base, historySize: 0, namespaces: { chat: { historySize: 20 }, ttl: { historyTtlSeconds: 30 } } });
  assert.equal(p.history('plain'), undefined);
  assert.deepEqual(p.history('chat:x'), { size: 20, ttlMs: 300_000, metaTtlMs: 3_600_000 });
  assert.equal(p.history('ttl:x'), undefined, 'a TTL without a size keeps nothing when the node keeps nothing');
});

test('anonymous access, client publish and subscriber limits by namespace; --dev makes every channel anonymous', () => {
  const config: ChannelPolicyConfig = {
    ...base,
    defaultNamespace: { maxSubscribers: 7 },
    namespaces: { public: { anonymous: true }, chat: { clientPublish: true, maxSubscribers: 2 } },
  };
  const p = new ChannelPolicy(config);
  assert.equal(p.allowsAnonymous('public:news'), true);
  assert.equal(p.allowsAnonymous('chat:room'), false);
  assert.equal(p.allowsAnonymous('news'), false);
  assert.equal(p.allowsClientPublish('chat:room'), true);
  assert.equal(p.allowsClientPublish('public:news'), false);
  assert.equal(p.maxSubscribers('chat:room'), 2);
  assert.equal(p.maxSubscribers('public:news'), 0, 'unset: unlimited');
  assert.equal(p.maxSubscribers('news'), 7, 'the default namespace has rules too');
  const dev = new ChannelPolicy({ ...config, dev: true });
  assert.equal(dev.allowsAnonymous('chat:room'), true);
  assert.equal(dev.allowsClientPublish('news'), false, '--dev alone does not open client publishing (server.ts adds localhost)');
});
