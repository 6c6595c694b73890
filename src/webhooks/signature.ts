/**
 * Herald's webhook signature, in the style of Stripe's: `X-Herald-Signature: t=<unix seconds>,v1=<hex>` where
 * `hex` is HMAC-SHA256(webhookSecret, "<t>.<body>"). The timestamp is inside what is signed, so a receiver that
 * refuses a `t` older than a few minutes (`verifyWebhookSignature`'s tolerance) cannot be fed a recorded request
 * again later (docs/webhooks.md).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'X-Herald-Signature';

/** The signature header's value for `body` sent at `timeMs`. */
export function webhookSignature(secret: string, body: string, timeMs: number): string {
  const t = Math.floor(timeMs / 1000);
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`, 'utf8').digest('hex')}`;
}

/**
 * For receivers written in TypeScript: true when `header` signs `body` with `secret` and its time is within
 * `toleranceSeconds` of `nowMs`. Compares in constant time.
 */
export function verifyWebhookSignature(
  secret: string,
  body: string,
  header: string | undefined,
  toleranceSeconds = 300,
  nowMs = Date.now(),
): boolean {
  if (!header) return false;
  const fields = new Map<string, string>();
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const t = Number(fields.get('t'));
  const given = fields.get('v1') ?? '';
  if (!Number.isSafeInteger(t) || Math.abs(nowMs / 1000 - t) > toleranceSeconds || !/^[0-9a-f]{64}$/.test(given)) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${body}`, 'utf8').digest();
  return timingSafeEqual(expected, Buffer.from(given, 'hex'));
}
