/**
 * Pusher cache channels (`cache-`, `private-cache-`, `private-encrypted-cache-`, `presence-cache-`; docs/pusher.md
 * "Cache channels") on Herald's history: the cached value is the channel's last message in its history, so it lives
 * as long as the channel's history does (historyTtlSeconds or its namespace's), on every node and worker alike.
 *
 * A subscriber is joined with resume from just before that message: the node's recovery delivers it, then the live
 * messages, without a gap or a duplicate (a message published while the subscription is made is not lost, nor sent
 * twice, nor overtaken by the older cached one). With nothing to send the client is told `pusher:cache_miss`.
 */
import { hasHistory } from '../broker/broker.js';
import type { HeraldNode } from '../core/node.js';
import type { StreamPosition } from '../protocol/message-id.js';
import { wsFrame, OPCODE_TEXT } from '../protocol/ws-frames.js';

const CACHE_CHANNEL = /^(private-encrypted-|private-|presence-)?cache-/;

export function isCacheChannel(name: string): boolean {
  return CACHE_CHANNEL.test(name);
}

/**
 * Where to resume a new subscriber of a cache channel so that it gets the last message first: the position just
 * before it. Undefined when there is none to send (nothing published yet, expired, or the channel keeps no history):
 * a cache miss. Rejects when the broker's history cannot be read.
 */
export async function cachedFrom(node: HeraldNode, channel: string): Promise<StreamPosition | undefined> {
  const policy = node.policy.history(channel);
  const broker = node.broker;
  if (!policy || !hasHistory(broker)) return undefined;
  // A read without `since` gives the channel's position and no message; the last one is the one after offset - 1.
  const { position } = await broker.history(channel, { limit: 1, policy });
  if (position.offset === 0) return undefined;
  const before: StreamPosition = { epoch: position.epoch, offset: position.offset - 1 };
  const read = await broker.history(channel, { since: before, limit: 1, policy });
  const last = read.publications[0]?.position;
  return last && last.epoch === position.epoch && last.offset === position.offset ? before : undefined;
}

/** `{"event":"pusher:cache_miss","channel":"..."}`: Pusher sends it without data. */
export function cacheMissFrame(channel: string): Buffer {
  return wsFrame(OPCODE_TEXT, Buffer.from(`{"event":"pusher:cache_miss","channel":${JSON.stringify(channel)}}`, 'utf8'));
}
