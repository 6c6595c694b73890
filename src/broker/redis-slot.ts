/**
 * Redis Cluster hash slots, computed here (CRC16/XMODEM mod 16384, with the `{hash tag}` rule) so the broker can
 * group channels per slot (SSUBSCRIBE takes channels of one slot only) and build keys that live on the same shard as
 * a channel: a history script that appends to a key and then SPUBLISHes to the channel must touch one slot only.
 */

const SLOTS = 16384;

const TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let j = 0; j < 8; j++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    t[i] = c;
  }
  return t;
})();

function crc16(bytes: Uint8Array, start: number, end: number): number {
  let crc = 0;
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ (TABLE[((crc >> 8) ^ (bytes[i] ?? 0)) & 0xff] ?? 0);
  return crc;
}

/** The cluster slot of a key or shard channel, as Redis computes it (bytes of the UTF-8 encoding). */
export function slotOf(name: string): number {
  // Runs once per message in Cluster: ASCII names (the usual case) are hashed without encoding them.
  if (isAscii(name)) return asciiSlot(name);
  const bytes = Buffer.from(name, 'utf8');
  const open = bytes.indexOf(0x7b); // '{'
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1); // '}'
    if (close > open + 1) return crc16(bytes, open + 1, close) % SLOTS;
  }
  return crc16(bytes, 0, bytes.length) % SLOTS;
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

function crc16Ascii(s: string, start: number, end: number): number {
  let crc = 0;
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ (TABLE[((crc >> 8) ^ s.charCodeAt(i)) & 0xff] ?? 0);
  return crc;
}

function asciiSlot(s: string): number {
  const open = s.indexOf('{');
  if (open >= 0) {
    const close = s.indexOf('}', open + 1);
    if (close > open + 1) return crc16Ascii(s, open + 1, close) % SLOTS;
  }
  return crc16Ascii(s, 0, s.length) % SLOTS;
}

let tags: string[] | undefined;

/** For every slot, a short hash tag that maps to it (built once, lazily: ~10^5 CRCs, a few milliseconds). */
function tagTable(): string[] {
  if (tags) return tags;
  const table = new Array<string>(SLOTS);
  let found = 0;
  for (let n = 0; found < SLOTS; n++) {
    const tag = n.toString(36);
    const slot = slotOf(tag);
    if (table[slot] === undefined) {
      table[slot] = tag;
      found++;
    }
  }
  tags = table;
  return table;
}

/** A hash tag (`{...}`, braces included) that places a key in `slot`. */
export function tagForSlot(slot: number): string {
  return `{${tagTable()[slot] ?? ''}}`;
}

/**
 * A key on the same cluster slot as `channel`, whatever characters the channel holds: `PREFIX{tag}CHANNEL`, where
 * the tag is chosen by slot. Safe in standalone Redis too (there, slots do not matter).
 */
export function keyInSlotOf(channel: string, prefix: string): string {
  return prefix + tagForSlot(slotOf(channel)) + channel;
}

/**
 * CLUSTER SLOTS' answer → the master serving each slot, as `host:port` ('' for a slot no master serves). A node
 * that does not know its own address answers an empty host or `?`: `fallbackHost` (the one that was asked) stands in.
 * Undefined when the answer is not a slot table.
 */
export function parseClusterSlots(reply: unknown, fallbackHost: string): string[] | undefined {
  if (!Array.isArray(reply)) return undefined;
  const owners = new Array<string>(SLOTS).fill('');
  for (const range of reply) {
    if (!Array.isArray(range) || range.length < 3 || !Array.isArray(range[2])) continue;
    const from = Number(range[0]);
    const to = Number(range[1]);
    const master = range[2] as unknown[];
    const raw = String(master[0] ?? '');
    const host = raw === '' || raw === '?' ? fallbackHost : raw;
    const port = Number(master[1]);
    if (!Number.isInteger(from) || !Number.isInteger(to) || !Number.isInteger(port)) continue;
    for (let s = Math.max(0, from); s <= Math.min(SLOTS - 1, to); s++) owners[s] = `${host}:${port}`;
  }
  return owners;
}
