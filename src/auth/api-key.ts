/**
 * Publish API keys, compared in constant time. Both sides are hashed first so the comparison takes the same time
 * whatever the length of the key presented.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/**
 * What a matching key may do: every call on every channel (`apiKeys`), or only channels of some namespaces
 * (`""` = the default one) and only some calls of the server API (docs/api.md; a scoped key without `calls`
 * may only publish).
 */
export interface ApiKeyScope {
  readonly namespaces?: readonly string[];
  readonly calls?: readonly string[];
}

/** May a key of this scope make this call? */
export function scopeAllows(scope: ApiKeyScope, call: string): boolean {
  return scope.calls === undefined || scope.calls.includes(call);
}

export class ApiKeys {
  private readonly entries: { digest: Buffer; scope: ApiKeyScope }[];
  constructor(keys: readonly string[], scoped: readonly { key: string; namespaces?: readonly string[]; calls?: readonly string[] }[] = []) {
    this.entries = [
      ...keys.map((k) => ({ digest: digest(k), scope: {} })),
      ...scoped.map((k) => ({
        digest: digest(k.key),
        scope: { ...(k.namespaces ? { namespaces: k.namespaces } : {}), calls: k.calls ?? ['publish'] },
      })),
    ];
  }
  /** The scope of the key `presented` equals, or undefined. Every key is compared, whichever matches. */
  match(presented: string): ApiKeyScope | undefined {
    const d = digest(presented);
    let found: ApiKeyScope | undefined;
    for (const e of this.entries) {
      if (timingSafeEqual(d, e.digest) && found === undefined) found = e.scope;
    }
    return found;
  }
}

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}
