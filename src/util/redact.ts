/** Broker URLs as they may be shown (logs, banners, `herald config print`): never with their password. */

/**
 * `redis://user:pw@host:6379/0` → `redis://user:***@host:6379/0`; `redis-cluster://:pw@h1:1,h2:2` →
 * `redis-cluster://:***@h1:1,h2:2`. Anything without credentials is returned as it is.
 */
export function redactUrl(url: string): string {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([^@/]*)@(.*)$/is.exec(url);
  if (!m) return url;
  const [, scheme = '', auth = '', rest = ''] = m;
  const colon = auth.indexOf(':');
  const user = colon >= 0 ? auth.slice(0, colon) : '';
  return `${scheme}${user}:***@${rest}`;
}

/** `redis://user:pw@host:6379/0` → `redis://host:6379`: where the broker is, for a banner. */
export function brokerAddress(url: string): string {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)(?:[^@/]*@)?([^/?#]*)/is.exec(url);
  return m ? `${m[1] ?? ''}${m[2] ?? ''}` : url;
}
