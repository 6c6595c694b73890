/** slotOf() and keyInSlotOf() agree with Redis' own CLUSTER KEYSLOT, for ASCII, UTF-8 and hash-tag edge cases. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { keyInSlotOf, slotOf } from '../src/broker/redis-slot.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';

let redis: RedisProcess;
before(async () => {
  redis = await startRedis({ extraArgs: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes-slot-test.conf'] });
});
after(() => redis?.stop());

const names = ['foo', 'news', '{user1000}.following', 'a{}b', '{}', '{', '}', 'a{b', 'a}b{c}', 'x{y}{z}', '☃', 'é{ü}x', 'emoji 🚀', 'a*b?[c]', ''];

test('slotOf matches CLUSTER KEYSLOT', () => {
  for (const n of names) assert.equal(slotOf(n), Number(redis.cli('CLUSTER', 'KEYSLOT', n)), n);
});

test('keyInSlotOf puts a key on its channel slot, whatever the channel holds', () => {
  for (const n of names) assert.equal(Number(redis.cli('CLUSTER', 'KEYSLOT', keyInSlotOf(n, 'herald:h:'))), slotOf(n), n);
});
