/**
 * Authorization as a node runs it, built once from the config in server.ts: the secret ring, the sealed-key opener,
 * the token verifier, namespaces, the origin check, and the SubscribeAuthorizer every transport calls.
 *
 * Seams for other transports (WebSocket, poll):
 * - `authorizer.authorize(creds)` for a subscribe, `authorizer.verifyToken(token)` for an in-band token refresh;
 * - `checkOrigin(origin)` before a WebSocket upgrade (false → 403 `origin_not_allowed`);
 * - `namespaces.mayClientPublish(channel, grant)` before a client publish.
 */
import type { HistoryPolicy } from '../broker/broker.js';
import type { HeraldConfig } from '../config.js';
import { HeraldError } from '../errors.js';
import { SubscribeAuthorizer, type GrantResolvers } from './grant.js';
import { TokenVerifier } from './jwt.js';
import { loadPublicKeys } from './jwt-keys.js';
import { Namespaces } from './namespaces.js';
import { originAllowed } from './origin.js';
import { SealedKeyOpener } from './sealed-key.js';
import { SecretRing } from './secrets.js';

export class Authorization {
  readonly ring: SecretRing;
  readonly namespaces: Namespaces;
  readonly keys: SealedKeyOpener | undefined;
  readonly tokens: TokenVerifier | undefined;
  readonly resolvers: GrantResolvers;
  readonly authorizer: SubscribeAuthorizer;
  /** May a browser page from `origin` open a WebSocket here (false → 403 before the upgrade)? */
  readonly checkOrigin: (origin: string | undefined) => boolean;

  /**
   * @param subscriberCount local subscribers of a channel (the hub's count), for namespaces' `maxSubscribers`.
   */
  constructor(config: HeraldConfig, subscriberCount: (channel: string) => number = () => 0) {
    this.ring = SecretRing.fromConfig(config);
    this.namespaces = new Namespaces(config);
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
    this.resolvers = {
      verifyToken: this.tokens?.verify,
      openKey: this.keys?.open,
      allowsAnonymous: (channel) => this.namespaces.allowsAnonymous(channel),
      plainKeys: config.dev,
    };
    const namespaces = this.namespaces;
    this.authorizer = new SubscribeAuthorizer(this.resolvers, config.maxChannelsPerConnection, (targets) => {
      for (const t of targets) {
        const max = namespaces.maxSubscribers(t.channel);
        if (max > 0 && subscriberCount(t.channel) >= max) {
          // A channel behind a sealed key is not named: neither its real name nor the key may show (or be logged).
          const which = t.label === t.channel ? `channel ${t.channel}` : 'this channel';
          throw new HeraldError('unavailable', `${which} holds its limit of ${max} subscribers on this node`);
        }
      }
    });
  }

  /** History policy by namespace, over the node's own (`nodeDefault`). */
  historyFor(channel: string, nodeDefault?: (channel: string) => HistoryPolicy | undefined): HistoryPolicy | undefined {
    return this.namespaces.historyFor(channel, nodeDefault);
  }
}
