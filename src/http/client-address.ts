/**
 * The client's address behind trusted proxies. By default (no `trustedProxies`) the TCP peer is the client. When the
 * peer is a configured proxy, the client is the rightmost `X-Forwarded-For` hop that is not itself a trusted proxy:
 * each proxy appends the address it received the request from, so hops to the right of the first untrusted one were
 * written by proxies we trust, and anything to its left may be forged by the client. Without `X-Forwarded-For`,
 * `Forwarded: for=` (RFC 7239) is read the same way. A proxy that sets only `Forwarded` must drop a client's
 * `X-Forwarded-For` (nginx's `proxy_add_x_forwarded_for` and HAProxy's `option forwardfor` append to it).
 *
 * The result feeds the per-IP connection limit, logs, and --dev's "from this machine" rule.
 */
import { BlockList, isIP } from 'node:net';

/** Hops looked at, from the right: a longer chain is not a real proxy chain. */
const MAX_HOPS = 16;

export class ClientAddress {
  private readonly trusted: BlockList | undefined;

  constructor(trustedProxies: readonly string[]) {
    if (trustedProxies.length === 0) return;
    const list = new BlockList();
    for (const entry of trustedProxies) {
      const [address = '', bits] = entry.split('/');
      const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
      if (bits === undefined) list.addAddress(address, family);
      else list.addSubnet(address, Number(bits), family);
    }
    this.trusted = list;
  }

  /** The client's address for a request from `peer` with these headers. */
  of(peer: string | undefined, header: (name: string) => string | undefined): string {
    const address = peer ?? 'unknown';
    if (!this.trusted || !this.isTrusted(address)) return address;
    const xff = header('x-forwarded-for');
    const hops = xff !== undefined ? xff.split(',') : forwardedFor(header('forwarded'));
    // Rightmost first: the first hop that is not a trusted proxy is the client.
    for (let i = hops.length - 1, n = 0; i >= 0 && n < MAX_HOPS; i--, n++) {
      const hop = normalize(hops[i] ?? '');
      if (hop === undefined) return address; // a trusted proxy wrote garbage: keep the peer
      if (!this.isTrusted(hop)) return hop;
    }
    return address; // every hop is a proxy of ours (or there are none): the peer stands for the client
  }

  private isTrusted(address: string): boolean {
    const family = isIP(address);
    return family !== 0 && this.trusted !== undefined && this.trusted.check(address, family === 6 ? 'ipv6' : 'ipv4');
  }
}

/** The `for=` values of a `Forwarded` header, in order (`for=1.2.3.4;proto=http, for="[::1]:80"`). */
function forwardedFor(value: string | undefined): string[] {
  if (value === undefined) return [];
  const out: string[] = [];
  for (const element of value.split(',')) {
    for (const pair of element.split(';')) {
      const eq = pair.indexOf('=');
      if (eq > 0 && pair.slice(0, eq).trim().toLowerCase() === 'for') out.push(pair.slice(eq + 1).trim().replace(/^"|"$/g, ''));
    }
  }
  return out;
}

/** An address as written in a hop (`1.2.3.4`, `1.2.3.4:5678`, `[::1]:80`, `::ffff:1.2.3.4`), or undefined. */
function normalize(hop: string): string | undefined {
  let h = hop.trim();
  if (h.startsWith('[')) h = h.slice(1, h.indexOf(']') < 0 ? undefined : h.indexOf(']'));
  else if (/^\d{1,3}(\.\d{1,3}){3}:\d+$/.test(h)) h = h.slice(0, h.lastIndexOf(':'));
  if (h.toLowerCase().startsWith('::ffff:') && isIP(h.slice(7)) === 4) h = h.slice(7);
  return isIP(h) !== 0 ? h : undefined;
}
