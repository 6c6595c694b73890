/**
 * Authorization as a node runs it, built once from the config in server.ts: the secret ring, the sealed-key opener,
 * the token verifier, the origin check, and the SubscribeAuthorizer every transport calls. What a channel allows
 * (anonymous access, subscriber limits, client publish) is the channel policy's (core/channel-policy.ts).
 *
 * Seams for other transports (WebSocket, poll):
 * - `authorizer.authorize(creds)` for a subscribe, `authorizer.verifyToken(token)` for an in-band token refresh;
 * - `checkOrigin(origin)` before a WebSocket upgrade (false → 403 `origin_not_allowed`);
 * - `mayClientPublish(channel, grant)` before a client publish.
 */
import type { HeraldConfig } from '../config.js';
import type { ChannelPolicy } from '../core/channel-policy.js';
import { HeraldError } from '../errors.js';
import { grantAllows, SubscribeAuthorizer, type Grant, type GrantResolvers } from './grant.js';
import type { MetricsRegistry } from '../core/metrics.js';
import { AuthHook } from './hook.js';
import { TokenVerifier } from './jwt.js';
import { loadPublicKeys } from './jwt-keys.js';
import { originAllowed } from './origin.js';
import { SealedKeyOpener } from './sealed-key.js';
import { SecretRing } from './secrets.js';

export class Authorization {
  readonly ring: SecretRing;
  readonly keys: SealedKeyOpener | undefined;
  readonly tokens: TokenVerifier | undefined;
  readonly resolvers: GrantResolvers;
  readonly authorizer: SubscribeAuthorizer;
  /** The app's auth hook (`authHook`), when configured. */
  readonly hook: AuthHook | undefined;
  /** May a browser page from `origin` open a WebSocket here (false → 403 before the upgrade)? */
  readonly checkOrigin: (origin: string | undefined) => boolean;

  /**
   * @param subscriberCount local subscribers of a channel (the hub's count), for namespaces' `maxSubscribers`.
   * @param registry where the auth hook's figures go (a hook is made only with `authHook` set).
   */
  constructor(
    config: HeraldConfig,
    private readonly policy: ChannelPolicy,
    subscriberCount: (channel: string) => number = () => 0,
    registry?: MetricsRegistry,
  ) {
    this.ring = SecretRing.fromConfig(config);
    this.checkOrigin = (origin) => originAllowed(origin, config.allowedOrigins, config.dev);
    this.keys = this.ring.configured ? new SealedKeyOpener(this.ring, config.authCacheSize) : undefined;
    const asymmetric = config.jwtPublicKeys.length > 0 || config.jwks.length > 0;
    this.tokens =
      this.ring.configured || asymmetric
        ? new TokenVerifier({
            ring: this.ring,
            algorithms: config.jwtAlgorithms,
            publicKeys: asymmetric ? loadPublicKeys(config) : undefined,
            issuers: config.jwtIssuers,
            audience: config.jwtAudience,
            leewaySeconds: config.jwtLeewaySeconds,
            cacheSize: config.authCacheSize,
          })
        : undefined;
    this.hook = config.authHook !== '' && registry ? new AuthHook(config, registry) : undefined;
    this.resolvers = {
      ...(this.hook ? { hook: this.hook } : {}),
      verifyToken: this.tokens?.verify,
      openKey: this.keys?.open,
      allowsAnonymous: (channel) => policy.allowsAnonymous(channel),
      plainKeys: config.dev,
    };
    this.authorizer = new SubscribeAuthorizer(this.resolvers, config.maxChannelsPerConnection, (targets) => {
      for (const t of targets) {
        const max = policy.maxSubscribers(t.channel);
        if (max > 0 && subscriberCount(t.channel) >= max) {
          // A channel behind a sealed key is not named: neither its real name nor the key may show (or be logged).
          const which = t.label === t.channel ? `channel ${t.channel}` : 'this channel';
          throw new HeraldError('unavailable', `${which} holds its limit of ${max} subscribers on this node`);
        }
      }
    });
  }

  /**
   * May a WebSocket client publish to `channel`? When its grant gives the publish right for the channel, or when the
   * namespace allows client publishing and the client may subscribe the channel (by grant or anonymously).
   */
  mayClientPublish(channel: string, grant: Grant | undefined): boolean {
    const g = grant ? grantAllows(grant, channel) : undefined;
    if (g?.publish) return true;
    if (!this.policy.allowsClientPublish(channel)) return false;
    return g !== undefined || this.policy.allowsAnonymous(channel);
  }
}
