/**
 * Idempotency keys (docs/protocol.md "Retrying a publish"): a publisher names a message with a key, and a retry under
 * the same key within the window is answered with the first attempt's id instead of being published again.
 *
 * A key is 1-128 characters of letters, digits and `-_.~+/=`: UUIDs, ULIDs, base64 and hex fit. No `:`, so the Redis
 * key `herald:i:<channel>:<key>` names one (channel, key) pair only.
 */
import { HeraldError } from '../errors.js';

export const MAX_IDEMPOTENCY_KEY_CHARS = 128;
const KEY_SHAPE = /^[A-Za-z0-9._~+/=-]{1,128}$/;

/** The key, checked; undefined when none was given. Throws 400 `bad_request` for a malformed key. */
export function idempotencyKey(value: unknown, where: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || !KEY_SHAPE.test(value)) {
    throw new HeraldError(
      'bad_request',
      `${where} must be 1-${MAX_IDEMPOTENCY_KEY_CHARS} characters of letters, digits and -_.~+/=`,
    );
  }
  return value;
}

/** The key of a publish given by a header and/or a body field: both may be given only when they agree. */
export function requestIdempotencyKey(header: string | undefined, field: unknown): string | undefined {
  const fromHeader = idempotencyKey(header, 'Idempotency-Key');
  const fromBody = idempotencyKey(field, '"idempotency_key"');
  if (fromHeader !== undefined && fromBody !== undefined && fromHeader !== fromBody) {
    throw new HeraldError('bad_request', 'Idempotency-Key and "idempotency_key" differ');
  }
  return fromHeader ?? fromBody;
}
