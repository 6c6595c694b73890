/** slotOf() and keyInSlotOf() agree with Redis' own CLUSTER KEYSLOT, for ASCII, UTF-8 and hash-tag edge cases. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { keyInSlotOf, parseClusterSlots, slotOf } from '../src/broker/redis-slot.js';
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

test('parseClusterSlots: every slot gets its master; an unknown host is the one asked; unserved slots are empty', () => {
  const reply = [
    [0, 5460, ['10.0.0.1', 7000, 'id1'], ['10.0.0.4', 7000, 'id4']],
    [5461, 10922, ['', 7001, 'id2']],
    [10923, 16000, ['?', 7002, 'id3']],
  ];
  const owners = parseClusterSlots(reply, '10.0.0.9');
  assert.ok(owners);
  assert.equal(owners.length, 16384);
  assert.equal(owners[0], '10.0.0.1:7000');
  assert.equal(owners[5460], '10.0.0.1:7000');
  assert.equal(owners[5461], '10.0.0.9:7001');
  assert.equal(owners[16000], '10.0.0.9:7002');
  assert.equal(owners[16001], '');
  assert.equal(parseClusterSlots('ERR', 'h'), undefined);
});
