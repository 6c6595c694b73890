/**
 * The grant seam: credentials from a request become the list of channels a connection may listen to.
 *
 * Every subscribe transport extracts the same `SubscribeCredentials` and calls `authorize()`. The ways of proving a
 * right (sealed keys, JWT grants, anonymous namespaces, --dev) are resolvers plugged in at server start; this file
 * only combines them and applies the rules that hold whatever the credential.
 */
import { HeraldError } from '../errors.js';
import { channelProblem } from '../protocol/channel.js';
import type { SessionTarget } from '../core/session.js';
import { subscribeCredentials, type StreamRequest } from '../http/request.js';
import type { HookAsk, HookCredential, HookGrant } from './hook.js';

/** One entry of a grant: an exact channel name, or a prefix pattern such as `user.42.*`. */
export interface ChannelGrant {
  readonly pattern: string;
  /** True when `pattern` ended in `*`: any channel starting with the part before it. */
  readonly prefix: boolean;
  /** May the holder publish to it from a WebSocket client. @default false */
  readonly publish?: boolean;
}

/** What a verified credential grants. */
export interface Grant {
  readonly subject?: string;
  /** The user's info as JSON text (a token's `info` claim), for presence. */
  readonly info?: string;
  readonly channels: readonly ChannelGrant[];
  /** Milliseconds since the epoch. */
  readonly expiresAt?: number;
}

/** What a client presented, as every transport extracts it. */
export interface SubscribeCredentials {
  /** `channel=` values: channel names, or choices among a token's channels. */
  readonly channels: readonly string[];
  /** `key=` values: sealed channel keys. */
  readonly keys: readonly string[];
  /** A JWT from `token=`, `Authorization: Bearer` or the configured cookie. */
  readonly token: string | undefined;
  readonly remoteAddress: string;
  /** The cookies and headers the auth hook is given, when one is configured (auth/hook.ts). */
  readonly hook?: HookCredential;
  /** `sub`, `sse`, `ws`, `poll`: told to the auth hook. */
  readonly transport?: string;
  /** Told to the auth hook: the connection's opening request, or a later subscribe on it (`/ws`). @default "connect" */
  readonly event?: 'connect' | 'subscribe';
  /** What the auth hook granted this connection before (`/ws`): channels it covers need no new call. */
  readonly hookGrant?: HookGrant;
}

export interface AuthorizedSubscription {
  readonly targets: SessionTarget[];
  readonly subject?: string;
  /** The user's info as JSON text, for presence. */
  readonly info?: string;
  readonly expiresAt?: number;
  /** The grant behind a token, for transports that subscribe or publish later (WebSocket). */
  readonly grant?: Grant;
  /** The auth hook's grant, when the hook was asked. */
  readonly hookGrant?: HookGrant;
}

/** A sealed key opened: the real channel, and when the key stops being valid. */
export interface OpenedKey {
  readonly channel: string;
  readonly expiresAt?: number;
}

/** The pluggable ways of proving a right. Each rejects with a HeraldError (401) when the credential is bad. */
export interface GrantResolvers {
  verifyToken?(token: string): Promise<Grant>;
  openKey?(key: string): Promise<OpenedKey>;
  /** May `channel` be subscribed without credentials (--dev, or a namespace that allows anonymous subscribers)? */
  allowsAnonymous(channel: string): boolean;
  /**
   * --dev only: a `key=` that is not a sealed key is taken as a plain channel name, so the seed design's own
   * `curl http://localhost:8080/sub?key=abc` works word for word (INTERFACE.md, "Subscribing").
   */
  readonly plainKeys?: boolean;
  /** The app's auth hook, asked for channels no token, key or anonymous rule covers (auth/hook.ts). */
  readonly hook?: {
    credentialOf(header: (name: string) => string | undefined): HookCredential;
    decide(ask: HookAsk): Promise<HookGrant>;
  };
}

export function grantAllows(grant: Grant, channel: string): ChannelGrant | undefined {
  for (const g of grant.channels) {
    if (g.prefix ? channel.startsWith(g.pattern) : channel === g.pattern) return g;
  }
  return undefined;
}

/** Parse a `channels` claim entry: `user.42.*` is a prefix grant, anything else exact. */
export function parseChannelGrant(entry: string, publish = false): ChannelGrant {
  if (entry.endsWith('*')) return { pattern: entry.slice(0, -1), prefix: true, publish };
  return { pattern: entry, prefix: false, publish };
}

/** Checks the final targets before any is joined (namespace subscriber limits); throws a HeraldError to refuse. */
export type TargetCheck = (targets: readonly SessionTarget[]) => void;

export class SubscribeAuthorizer {
  constructor(
    private readonly resolvers: GrantResolvers,
    private readonly maxChannels: number,
    private readonly checkTargets: TargetCheck = () => undefined,
  ) {}

  /** A sealed key opened; in --dev, a key that does not open is the plain channel of that name. */
  private async openKey(key: string): Promise<OpenedKey> {
    const { openKey, plainKeys } = this.resolvers;
    if (!openKey && !plainKeys) throw new HeraldError('unauthorized', 'invalid channel key');
    try {
      if (openKey) return await openKey(key);
    } catch (err) {
      if (!plainKeys) throw err;
    }
    const problem = channelProblem(key);
    if (problem) throw new HeraldError('invalid_channel', problem);
    return { channel: key };
  }

  async authorize(creds: SubscribeCredentials): Promise<AuthorizedSubscription> {
    if (creds.channels.length + creds.keys.length > this.maxChannels) {
      throw new HeraldError('too_many_channels', `at most ${this.maxChannels} channels per connection`);
    }
    for (const c of creds.channels) {
      const problem = channelProblem(c);
      if (problem) throw new HeraldError('invalid_channel', problem);
    }
    const hook = creds.hook !== undefined ? this.resolvers.hook : undefined;
    const bare = creds.channels.length === 0 && creds.keys.length === 0 && creds.token === undefined;
    if (bare && !hook) {
      throw new HeraldError('bad_request', 'no channel: give channel=, key= or token=');
    }

    const targets: SessionTarget[] = [];
    let expiresAt: number | undefined;
    const expireBy = (t: number | undefined): void => {
      if (t !== undefined && (expiresAt === undefined || t < expiresAt)) expiresAt = t;
    };

    for (const key of creds.keys) {
      const opened = await this.openKey(key);
      expireBy(opened.expiresAt);
      targets.push({ channel: opened.channel, label: key });
    }

    let grant: Grant | undefined;
    let hookGrant: HookGrant | undefined;
    if (creds.token !== undefined) {
      if (!this.resolvers.verifyToken) throw new HeraldError('unauthorized', 'tokens are not accepted here');
      grant = await this.resolvers.verifyToken(creds.token);
      expireBy(grant.expiresAt);
      if (creds.channels.length === 0) {
        this.grantedByName(grant, targets, 'the token grants only prefixes: name channels');
      } else {
        for (const c of creds.channels) {
          // A token holder may also pick channels anybody may subscribe.
          if (!grantAllows(grant, c) && !this.resolvers.allowsAnonymous(c)) {
            throw new HeraldError('forbidden', `channel not granted: ${c}`);
          }
          targets.push({ channel: c, label: c });
        }
      }
    } else {
      const earlier = creds.hookGrant;
      const covered = (c: string): boolean =>
        this.resolvers.allowsAnonymous(c) || (earlier !== undefined && grantAllows(earlier, c) !== undefined);
      const needed = creds.channels.filter((c) => !covered(c));
      if (hook && creds.hook && (needed.length > 0 || bare)) {
        hookGrant = await hook.decide({
          event: creds.event ?? 'connect',
          transport: creds.transport ?? 'unknown',
          channels: needed,
          credential: creds.hook,
          remoteAddress: creds.remoteAddress,
        });
        expireBy(hookGrant.expiresAt);
        if (bare) this.grantedByName(hookGrant, targets, 'the auth hook granted no channel by name: name channels');
      }
      for (const c of creds.channels) {
        if (!covered(c) && !(hookGrant && grantAllows(hookGrant, c))) {
          if (hookGrant) throw new HeraldError('forbidden', `channel not granted by the auth hook: ${c}`);
          throw new HeraldError('unauthorized', 'credentials required: give key= or token=');
        }
        targets.push({ channel: c, label: c });
      }
    }

    const unique = dedupe(targets);
    this.checkTargets(unique);
    const subject = grant?.subject ?? hookGrant?.subject ?? creds.hookGrant?.subject;
    const info = grant?.info ?? hookGrant?.info ?? creds.hookGrant?.info;
    return { targets: unique, subject, ...(info !== undefined ? { info } : {}), expiresAt, grant, ...(hookGrant ? { hookGrant } : {}) };
  }

  /** With no channel named: every exact channel of `grant` becomes a target (a prefix needs a name). */
  private grantedByName(grant: Grant, targets: SessionTarget[], none: string): void {
    for (const g of grant.channels) if (!g.prefix) targets.push({ channel: g.pattern, label: g.pattern });
    if (targets.length === 0) throw new HeraldError('bad_request', `no channel: ${none}`);
    if (targets.length > this.maxChannels) {
      throw new HeraldError('too_many_channels', `at most ${this.maxChannels} channels per connection`);
    }
  }

  /** The credentials of a subscribe request on `transport`, with the auth hook's when a hook is configured. */
  credentialsOf(req: StreamRequest, transport: string, tokenCookie: string): SubscribeCredentials {
    const creds = subscribeCredentials(req, tokenCookie);
    const hook = this.resolvers.hook;
    return hook ? { ...creds, transport, hook: hook.credentialOf(req.header) } : { ...creds, transport };
  }

  /**
   * A WebSocket opened with no channel, key or token: with an auth hook, it decides whether the connection may stay
   * (a denial refuses the upgrade) and who the user is; its grant covers later subscribes. Without one: undefined.
   */
  async connect(creds: SubscribeCredentials): Promise<HookGrant | undefined> {
    const hook = this.resolvers.hook;
    if (!hook || !creds.hook || creds.token !== undefined) return undefined;
    return hook.decide({
      event: 'connect',
      transport: creds.transport ?? 'unknown',
      channels: [],
      credential: creds.hook,
      remoteAddress: creds.remoteAddress,
    });
  }

  /** Verify a token on its own, for WebSocket `connect` and `refresh`: its grant, or a 401. */
  async verifyToken(token: string): Promise<Grant> {
    if (!this.resolvers.verifyToken) throw new HeraldError('unauthorized', 'tokens are not accepted here');
    return this.resolvers.verifyToken(token);
  }
}

function dedupe(targets: SessionTarget[]): SessionTarget[] {
  const seen = new Set<string>();
  return targets.filter((t) => {
    const k = t.channel + '\u0000' + t.label;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
