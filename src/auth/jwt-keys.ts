/**
 * Public keys for RS/PS/ES/EdDSA tokens: PEM or JWK files (`jwtPublicKeys`), and JWKS from files or URLs (`jwks`),
 * each JWKS optionally bound to one issuer so a key of one identity provider cannot sign for another.
 * Read once at start: a missing or unreadable file is a bad setting (exit code 2). Remote sets are fetched on first
 * use and cached by jose (`jwksCacheSeconds`).
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { JSONWebKeySet, JWTVerifyGetKey } from 'jose';
import { lazyKeySet } from './jose-lazy.js';
import { ConfigError, type HeraldConfig } from '../config.js';

export interface KeySet {
  /** Tokens whose `iss` is this one only; undefined = any issuer. */
  readonly issuer?: string;
  readonly getKey: JWTVerifyGetKey;
  readonly remote: boolean;
}

export interface PublicKeys {
  readonly keys: readonly KeyObject[];
  readonly sets: readonly KeySet[];
}

type KeyConfig = Pick<HeraldConfig, 'jwtPublicKeys' | 'jwks' | 'jwksCacheSeconds'>;

export function loadPublicKeys(config: KeyConfig): PublicKeys {
  const keys: KeyObject[] = [];
  for (const file of config.jwtPublicKeys) keys.push(...readKeyFile(file));
  const sets = config.jwks.map((entry) => keySet(entry, config.jwksCacheSeconds));
  return { keys, sets };
}

function readKeyFile(file: string): KeyObject[] {
  const text = readText('jwtPublicKeys', file);
  try {
    if (text.trimStart().startsWith('{')) {
      const json = JSON.parse(text) as { keys?: unknown[] };
      const jwks = Array.isArray(json.keys) ? json.keys : [json];
      return jwks.map((jwk) => publicOnly(createPublicKey({ key: jwk as never, format: 'jwk' })));
    }
    return [publicOnly(createPublicKey(text))];
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError('jwtPublicKeys', `${file} holds no usable public key (PEM SPKI or JWK)`);
  }
}

function publicOnly(key: KeyObject): KeyObject {
  if (key.type !== 'public') throw new ConfigError('jwtPublicKeys', 'give public keys only');
  return key;
}

/** `SOURCE` or `ISSUER SOURCE`, where SOURCE is an http(s) URL or a file path. */
function keySet(entry: string, cacheSeconds: number): KeySet {
  const parts = entry.trim().split(/\s+/);
  const [issuer, source] = parts.length === 2 ? [parts[0], parts[1]] : [undefined, parts[0]];
  if (parts.length > 2 || !source) throw new ConfigError('jwks', `"${entry}": expected SOURCE or "ISSUER SOURCE"`);
  if (/^https?:\/\//.test(source)) {
    let url: URL;
    try {
      url = new URL(source);
    } catch {
      throw new ConfigError('jwks', `"${source}" is not a URL`);
    }
    const getKey = lazyKeySet((jose) => jose.createRemoteJWKSet(url, {
      cacheMaxAge: cacheSeconds * 1000,
      cooldownDuration: 30_000,
      timeoutDuration: 5000,
    }));
    return { issuer, getKey, remote: true };
  }
  let set: JSONWebKeySet;
  try {
    set = JSON.parse(readText('jwks', source)) as JSONWebKeySet;
    if (!Array.isArray(set.keys)) throw new Error('no keys');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError('jwks', `${source} is not a JWKS ({"keys":[...]})`);
  }
  return { issuer, getKey: lazyKeySet((jose) => jose.createLocalJWKSet(set)), remote: false };
}

function readText(setting: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(setting, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}
