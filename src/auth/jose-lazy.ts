/**
 * `jose`, loaded on first use (the first token verified or signed) rather than at start: it costs ~3 MB of a
 * process's own memory, which a node or worker serving anonymous or key-checked `/sub` connections never needs, and
 * with `--workers N` every process counts (docs/benchmarks.md "Start-up footprint").
 */
import type * as Jose from 'jose';

export type JoseModule = typeof Jose;

let loaded: JoseModule | undefined;
let loading: Promise<JoseModule> | undefined;

/** jose, importing it the first time (a failed import is tried again by the next call). */
export function loadJose(): Promise<JoseModule> {
  if (loaded) return Promise.resolve(loaded);
  loading ??= import('jose').then(
    (m) => (loaded = m),
    (err: unknown) => {
      loading = undefined;
      throw err;
    },
  );
  return loading;
}

/** jose once loadJose() has resolved; code that runs only after it (an error mapping, a key lookup) reads it here. */
export function loadedJose(): JoseModule {
  if (!loaded) throw new Error('jose is used before loadJose() resolved');
  return loaded;
}

/**
 * A key lookup made on first use: `make` runs once jose is loaded, and its result answers every lookup (a remote
 * set keeps its cache in it).
 */
export function lazyKeySet(make: (jose: JoseModule) => Jose.JWTVerifyGetKey): Jose.JWTVerifyGetKey {
  let made: Jose.JWTVerifyGetKey | undefined;
  return async (header, token) => {
    made ??= make(await loadJose());
    return made(header, token);
  };
}
