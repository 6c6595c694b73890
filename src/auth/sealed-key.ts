/**
 * Sealed channel keys: the channel name encrypted and authenticated (AES-256-GCM), with an expiry inside and a key
 * id outside, so a client can hold the right to listen without learning the channel's name, and the secret can rotate.
 *
 * Layout, before base64url:
 *   version (1) | key id (4) | IV (12) | ciphertext | GCM tag (16)
 *   plaintext = expiry in seconds since the epoch, 0 = never (4, big-endian) | channel length (1) | channel | zero pad
 * The version and key id are authenticated as additional data. The plaintext is padded to a multiple of 32 bytes so
 * the key's length says no more than a bucket of the channel name's length.
 * The AES key is derived per key id from the secret with HKDF-SHA256; the key id is itself derived from the secret,
 * so an old key names the secret it was sealed with without revealing it.
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { HeraldError } from '../errors.js';
import { channelProblem } from '../protocol/channel.js';
import { credentialDigest, ExpiringLru } from '../util/lru.js';
import type { OpenedKey } from './grant.js';
import type { SecretRing } from './secrets.js';

const VERSION = 1;
const HEADER = 1 + 4;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const PAD = 32;
/** Longest key accepted: a 255-byte channel padded, in base64url. Anything longer is refused before decoding. */
export const MAX_KEY_CHARS = Math.ceil(((HEADER + IV_BYTES + Math.ceil((5 + 255) / PAD) * PAD + TAG_BYTES) * 4) / 3);
const MIN_KEY_BYTES = HEADER + IV_BYTES + PAD + TAG_BYTES;
const MIN_KEY_CHARS = Math.ceil((MIN_KEY_BYTES * 4) / 3);

/** One answer for every bad key (tampered, truncated, expired, foreign), so a refusal tells nothing about a channel. */
const INVALID = 'invalid or expired channel key';

interface DerivedKey {
  readonly id: Buffer;
  readonly aes: Buffer;
}

const derived = new Map<string, DerivedKey>();

/** The key id and AES key of a secret (memoized: HKDF is cheap but not free). */
function derive(secret: string): DerivedKey {
  let d = derived.get(secret);
  if (!d) {
    const id = createHmac('sha256', secret).update('herald/sealed-key/id').digest().subarray(0, 4);
    const aes = Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), 'herald/sealed-key/v1', id, 32));
    d = { id, aes };
    if (derived.size > 16) derived.clear();
    derived.set(secret, d);
  }
  return d;
}

export interface SealOptions {
  /** The secret (HERALD_SECRET). */
  readonly secret: string;
  /** Seconds the key stays valid; undefined or 0 = no expiry. */
  readonly ttlSeconds?: number;
  /** For tests: the current time in milliseconds. */
  readonly now?: number;
}

/** Seal a channel name into an opaque, URL-safe key. Throws HeraldError `invalid_channel` for a bad name. */
export function sealChannel(channel: string, options: SealOptions): string {
  const problem = channelProblem(channel);
  if (problem) throw new HeraldError('invalid_channel', problem);
  if (!options.secret) throw new HeraldError('bad_request', 'a secret is needed to seal a channel');
  const ttl = options.ttlSeconds ?? 0;
  if (!Number.isFinite(ttl) || ttl < 0) throw new HeraldError('bad_request', 'ttl must be a positive number of seconds');
  const expiry = ttl > 0 ? Math.ceil((options.now ?? Date.now()) / 1000 + ttl) : 0;
  if (expiry > 0xffffffff) throw new HeraldError('bad_request', 'ttl too long');

  const name = Buffer.from(channel, 'utf8');
  const plain = Buffer.alloc(Math.ceil((5 + name.length) / PAD) * PAD);
  plain.writeUInt32BE(expiry, 0);
  plain.writeUInt8(name.length, 4);
  name.copy(plain, 5);

  const { id, aes } = derive(options.secret);
  const header = Buffer.from([VERSION, ...id]);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', aes, iv);
  cipher.setAAD(header);
  const body = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([header, iv, body, cipher.getAuthTag()]).toString('base64url');
}

const KEY_SHAPE = /^[A-Za-z0-9_-]+$/;

/** Could `key` be a sealed key, by its length and alphabet alone? (Checked before any lookup or decoding.) */
export function sealedKeyShapeOk(key: string): boolean {
  return key.length >= MIN_KEY_CHARS && key.length <= MAX_KEY_CHARS && KEY_SHAPE.test(key);
}

/** Open a sealed key with the ring's accepted secrets. Throws HeraldError 401 (always the same) when it cannot. */
export function openSealedKey(key: string, ring: SecretRing, now = Date.now()): OpenedKey & { validUntil: number } {
  if (!sealedKeyShapeOk(key)) throw invalid();
  const raw = Buffer.from(key, 'base64url');
  // Only the canonical encoding is accepted, so one key has one spelling (and one stream label).
  if (raw.length < MIN_KEY_BYTES || raw.toString('base64url') !== key || raw[0] !== VERSION) throw invalid();
  const id = raw.subarray(1, HEADER);
  for (const s of ring.accepted(now)) {
    const d = derive(s.secret);
    if (!d.id.equals(id)) continue;
    const plain = decrypt(raw, d.aes);
    // Key ids are 4 bytes: two secrets may share one, so a failed opening tries the next secret.
    if (!plain) continue;
    const expiry = plain.readUInt32BE(0) * 1000;
    const length = plain.readUInt8(4);
    if (length === 0 || 5 + length > plain.length) throw invalid();
    if (expiry !== 0 && expiry <= now) throw invalid();
    const channel = plain.subarray(5, 5 + length).toString('utf8');
    if (channelProblem(channel)) throw invalid();
    // A key sealed with a rotated-out secret lasts no longer than that secret.
    const validUntil = Math.min(expiry || Infinity, s.until ?? Infinity);
    return { channel, expiresAt: Number.isFinite(validUntil) ? validUntil : undefined, validUntil };
  }
  throw invalid();
}

function decrypt(raw: Buffer, aes: Buffer): Buffer | undefined {
  try {
    const decipher = createDecipheriv('aes-256-gcm', aes, raw.subarray(HEADER, HEADER + IV_BYTES), {
      authTagLength: TAG_BYTES,
    });
    decipher.setAAD(raw.subarray(0, HEADER));
    decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
    return Buffer.concat([decipher.update(raw.subarray(HEADER + IV_BYTES, raw.length - TAG_BYTES)), decipher.final()]);
  } catch {
    return undefined;
  }
}

function invalid(): HeraldError {
  return new HeraldError('unauthorized', INVALID);
}

/**
 * Opens keys for the subscribe path, remembering what it opened (bounded, and never past a key's expiry or its
 * secret's end date, keyed by the key's SHA-256) so a crowd connecting with one key costs one decryption.
 */
export class SealedKeyOpener {
  private readonly cache: ExpiringLru<string, OpenedKey>;

  constructor(private readonly ring: SecretRing, cacheSize: number) {
    this.cache = new ExpiringLru(cacheSize);
  }

  readonly open = async (key: string): Promise<OpenedKey> => this.openSync(key);

  openSync(key: string, now = Date.now()): OpenedKey {
    // Shape first, then the cache by the key's digest (see credentialDigest): never a lookup keyed by client text.
    if (!sealedKeyShapeOk(key)) throw invalid();
    const digest = credentialDigest(key);
    const hit = this.cache.get(digest, now);
    if (hit) return hit;
    const { validUntil, ...opened } = openSealedKey(key, this.ring, now);
    this.cache.set(digest, opened, validUntil);
    return opened;
  }
}
