/**
 * The client command protocol of `/ws` (docs/protocol.md "GET /ws": connect, refresh, subscribe, unsubscribe,
 * publish, presence, presence_stats, ping), with no WebSocket in it: what each request does to a connection's
 * session and credentials, and the result it answers. The transport parses frames (protocol/ws-frames.ts
 * `parseRequest`), runs requests one after another, and frames the replies; this module decides.
 *
 * A transport's connection extends `ClientCommands` (one object per connection: no second allocation per client)
 * and says how an `unsubscribed` notice is framed.
 */
import { randomBytes } from 'node:crypto';
import { grantAllows, type AuthorizedSubscription, type Grant, type SubscribeAuthorizer, type SubscribeCredentials } from '../auth/grant.js';
import type { HookCredential, HookGrant } from '../auth/hook.js';
import type { HeraldConfig } from '../config.js';
import type { HeraldNode, ResumeRequest } from '../core/node.js';
import type { Session, SessionTarget } from '../core/session.js';
import { HeraldError } from '../errors.js';
import type { Presence } from '../presence/presence.js';
import { memberObject } from '../presence/member.js';
import { channelProblem } from '../protocol/channel.js';
import { idempotencyKey } from '../protocol/idempotency.js';
import { parseCursor } from '../protocol/message-id.js';
import type { ClientRequest } from '../protocol/ws-frames.js';
import { credentialDigest } from '../util/lru.js';

/** What the commands need from the server. */
export interface CommandContext {
  readonly node: HeraldNode;
  readonly authorizer: SubscribeAuthorizer;
  readonly config: HeraldConfig;
  /**
   * May this client publish to `channel`? (the grant's publish right, namespace rules, --dev). `otherSite`: the
   * connection was opened by a web page of another site (http/dev-guard.ts), which --dev's keyless right excludes.
   */
  mayPublish(grant: Grant | undefined, channel: string, remoteAddress: string, otherSite: boolean): boolean;
  /** `json`: `data` is JSON text (the frame's `data` was a JSON value that is not a string). */
  publish(channel: string, data: string, json: boolean, idempotencyKey?: string): Promise<{ id?: string; replayed?: boolean }>;
  /** Presence (src/presence/): a client may ask who is in a channel it subscribes to, where presence is on. */
  readonly presence?: Presence;
}

export interface OpenedUrl {
  targets: SessionTarget[];
  expiresAt?: number;
  /** Who the client is: the token's subject, else the auth hook's user. */
  subject?: string;
  info?: string;
  keysExpireAt?: number;
  token?: string;
  grant?: Grant;
  /** What the auth hook granted at the upgrade (later subscribes of channels it covers ask no more). */
  hookGrant?: HookGrant;
  hook?: HookCredential;
  /** Why --dev's keyless publishing is closed to this connection's page (http/dev-guard.ts), if it is. */
  otherSite?: string | undefined;
}

/** URL credentials, if any: keys and token are authorized apart so a later `refresh` knows which expiry is whose. */
export async function authorizeUrl(authorizer: SubscribeAuthorizer, creds: SubscribeCredentials, max: number): Promise<OpenedUrl> {
  if (creds.channels.length + creds.keys.length > max) {
    throw new HeraldError('too_many_channels', `at most ${max} channels per connection`);
  }
  let keys: AuthorizedSubscription | undefined;
  let named: AuthorizedSubscription | undefined;
  if (creds.keys.length > 0) keys = await authorizer.authorize({ ...creds, channels: [], token: undefined });
  let hookGrant: HookGrant | undefined;
  if (creds.channels.length > 0 || creds.token !== undefined) {
    named = await authorizer.authorize({ ...creds, keys: [] });
    hookGrant = named.hookGrant;
  } else if (creds.keys.length === 0) {
    // A bare connection: the auth hook (if any) says whether it may stay, and who it is.
    hookGrant = await authorizer.connect(creds);
  }
  const who = named?.grant ?? hookGrant;
  return {
    targets: [...(keys?.targets ?? []), ...(named?.targets ?? [])],
    ...(who?.subject !== undefined ? { subject: who.subject } : {}),
    ...(who?.info !== undefined ? { info: who.info } : {}),
    expiresAt: earliest(earliest(keys?.expiresAt, named?.expiresAt), hookGrant?.expiresAt),
    keysExpireAt: keys?.expiresAt,
    token: creds.token,
    grant: named?.grant,
    ...(hookGrant ? { hookGrant } : {}),
    ...(creds.hook ? { hook: creds.hook } : {}),
  };
}

function earliest(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.min(a, b);
}

/** Entries a connection's merged auth hook grant keeps at most (each answer holds up to 1,000). */
const MAX_HOOK_GRANT_ENTRIES = 2000;

/** A connection's hook grants, one after another: the channels of both, the first user, the earliest expiry. */
function mergeHookGrants(before: HookGrant | undefined, added: HookGrant): HookGrant {
  if (!before) return added;
  const channels = before.channels.length + added.channels.length <= MAX_HOOK_GRANT_ENTRIES ? [...before.channels, ...added.channels] : before.channels;
  const expiresAt = earliest(before.expiresAt, added.expiresAt);
  const subject = before.subject ?? added.subject;
  return { ...before, channels, ...(subject !== undefined ? { subject } : {}), ...(expiresAt !== undefined ? { expiresAt } : {}) };
}

/** One connection's command state: its credentials, and what each request does with them. */
export abstract class ClientCommands {
  private token: string | undefined;
  private grant: Grant | undefined;
  /** Earliest expiry of the sealed keys ever subscribed (a key's expiry does not move). */
  private keysExpireAt: number | undefined;
  /** Channels subscribed by name under the token: a refreshed token must still grant them. Made when first needed. */
  private tokenChannels: Set<string> | undefined;
  private readonly otherSite: string | undefined;
  /** The auth hook's view of this client (taken at the upgrade) and what it granted so far. */
  private readonly hookCredential: HookCredential | undefined;
  private hookGrant: HookGrant | undefined;
  /** Scopes idempotency keys of a connection without a token subject (made when first needed). */
  private nonce: string | undefined;

  constructor(
    protected readonly ctx: CommandContext,
    protected readonly session: Session,
    opened: OpenedUrl,
  ) {
    this.token = opened.token;
    this.grant = opened.grant;
    this.keysExpireAt = opened.keysExpireAt;
    this.otherSite = opened.otherSite;
    this.hookCredential = opened.hook;
    this.hookGrant = opened.hookGrant;
    if (opened.grant) for (const t of opened.targets) if (t.label === t.channel) this.grantedByToken(t.channel);
  }

  /** The transport's frame telling the client `label` was taken off (its token no longer grants it). */
  protected abstract unsubscribedFrame(label: string): Buffer;

  /**
   * Carry out one request and give its result (the reply's `result`). Rejects with a HeraldError the transport
   * answers as an error frame for the request; the session is untouched by a refused request.
   */
  async handle(request: ClientRequest): Promise<Record<string, unknown>> {
    switch (request.op) {
      case 'ping':
        return {};
      case 'connect':
        if (this.token !== undefined) throw new HeraldError('bad_request', 'already connected with a token: use refresh');
        return this.useToken(request.token);
      case 'refresh':
        if (this.token === undefined) throw new HeraldError('bad_request', 'no token to refresh: use connect');
        return this.useToken(request.token);
      case 'subscribe':
        if (request.joinLeave === true) this.session.joinLeave = true;
        return this.subscribe(request.channel, request.key, request.since);
      case 'presence':
      case 'presence_stats':
        return this.presence(request.op, request.channel);
      case 'unsubscribe':
        return this.unsubscribe(request.channel ?? request.key ?? '');
      case 'publish':
        return this.publish(request.channel, request.data, request.json, request.idempotencyKey);
    }
  }

  private async useToken(token: string): Promise<Record<string, unknown>> {
    const grant = await this.ctx.authorizer.verifyToken(token);
    // A refresh keeps the subject, and "no subject" is one too: a connection opened with a token without `sub`
    // must not become some user's by refreshing with theirs (nor drop its user by refreshing without one).
    if (this.token !== undefined && grant.subject !== this.grant?.subject) {
      throw new HeraldError('forbidden', 'a refreshed token must have the same subject (sub) as the one it replaces');
    }
    if (this.session.isEnded) return {};
    this.token = token;
    this.grant = grant;
    this.session.identify(grant.subject, grant.info);
    // Channels the new token no longer grants are dropped, and the client is told which.
    for (const channel of [...(this.tokenChannels ?? [])]) {
      if (grantAllows(grant, channel)) continue;
      this.tokenChannels?.delete(channel);
      this.ctx.node.unsubscribe(this.session, { channel, label: channel });
      this.session.write(this.unsubscribedFrame(channel));
    }
    this.session.expiresAt = earliest(grant.expiresAt, this.keysExpireAt);
    const result: Record<string, unknown> = { client: this.session.id, expiresAt: grant.expiresAt ?? null };
    if (grant.subject !== undefined) result['subject'] = grant.subject;
    return result;
  }

  private async subscribe(
    channel: string | undefined,
    key: string | undefined,
    since: string | undefined,
  ): Promise<Record<string, unknown>> {
    this.refuseIfExpired();
    const label = channel ?? key ?? '';
    // `since` is one channel's last id ("" for none yet): a one-channel cursor.
    const resume: ResumeRequest | undefined = since === undefined ? undefined : { since: parseCursor(since, 1) };
    if (this.session.targets.some((t) => t.label === label)) return { channel: label };
    const max = this.ctx.config.maxChannelsPerConnection;
    if (this.session.targets.length >= max) {
      throw new HeraldError('too_many_channels', `at most ${max} channels per connection`);
    }
    const auth = await this.ctx.authorizer.authorize({
      channels: channel === undefined ? [] : [channel],
      keys: key === undefined ? [] : [key],
      // A key is its own proof; with a token, a named channel must be granted by it.
      token: key === undefined ? this.token : undefined,
      remoteAddress: this.session.options.remoteAddress,
      transport: 'ws',
      event: 'subscribe',
      ...(this.hookCredential ? { hook: this.hookCredential } : {}),
      ...(this.hookGrant ? { hookGrant: this.hookGrant } : {}),
    });
    if (auth.hookGrant) this.hookGrant = mergeHookGrants(this.hookGrant, auth.hookGrant);
    if (this.session.isEnded) return { channel: label };
    await this.ctx.node.subscribe(this.session, auth.targets, resume);
    if (key !== undefined) {
      this.keysExpireAt = earliest(this.keysExpireAt, auth.expiresAt);
    } else if (this.token !== undefined && channel !== undefined) {
      this.grantedByToken(channel);
    }
    this.session.expiresAt = earliest(earliest(this.grant?.expiresAt, this.keysExpireAt), this.hookGrant?.expiresAt);
    return { channel: label };
  }

  private unsubscribe(label: string): Record<string, unknown> {
    const target = this.session.targets.find((t) => t.label === label);
    if (target) {
      this.ctx.node.unsubscribe(this.session, target);
      this.tokenChannels?.delete(target.channel);
    }
    return {};
  }

  /** Who is in a channel this connection subscribes to (by the name it knows it by), where presence is on. */
  private async presence(op: 'presence' | 'presence_stats', label: string): Promise<Record<string, unknown>> {
    const target = this.session.targets.find((t) => t.label === label);
    if (!target) throw new HeraldError('forbidden', 'presence is answered for channels this connection subscribes to');
    const presence = this.ctx.presence;
    if (!presence?.enabled(target.channel)) throw new HeraldError('forbidden', 'presence is not on for this channel');
    if (op === 'presence_stats') return { channel: label, ...(await presence.stats(target.channel)) };
    const answer = await presence.members(target.channel);
    return { channel: label, members: answer.members.map(memberObject), truncated: answer.truncated };
  }

  protected grantedByToken(channel: string): void {
    (this.tokenChannels ??= new Set()).add(channel);
  }

  /**
   * The node's ticker closes an expired connection within a second (and token checks allow `jwtLeewaySeconds` of
   * skew): a publish or subscribe in that time is refused here, at the connection's own expiry.
   */
  private refuseIfExpired(): void {
    const expiresAt = this.session.expiresAt;
    if (expiresAt !== undefined && expiresAt <= Date.now()) {
      throw new HeraldError('token_expired', 'credentials expired: refresh before expiresAt');
    }
  }

  private async publish(channel: string, data: string, json: boolean, key: string | undefined): Promise<Record<string, unknown>> {
    this.refuseIfExpired();
    const problem = channelProblem(channel);
    if (problem) throw new HeraldError('invalid_channel', problem);
    const checkedKey = idempotencyKey(key, '"idempotency_key"');
    const grant = this.grant ?? this.hookGrant;
    if (!this.ctx.mayPublish(grant, channel, this.session.options.remoteAddress, this.otherSite !== undefined)) {
      if (this.otherSite !== undefined && this.ctx.mayPublish(grant, channel, this.session.options.remoteAddress, false)) {
        throw new HeraldError('origin_not_allowed', this.otherSite);
      }
      throw new HeraldError('forbidden', `publishing to ${channel} is not granted`);
    }
    const { id, replayed } = await this.ctx.publish(channel, data, json, checkedKey === undefined ? undefined : this.scopedKey(checkedKey));
    return { ...(id !== undefined ? { id } : {}), ...(replayed ? { replayed: true } : {}) };
  }

  /**
   * A client's idempotency key, scoped to its token's subject (or, without one, to this connection), so one client
   * cannot claim the keys another will use and have that client's messages dropped as retries.
   */
  private scopedKey(key: string): string {
    const subject = this.grant?.subject;
    const scope = subject !== undefined ? `s\u0000${subject}` : `c\u0000${(this.nonce ??= randomBytes(12).toString('base64url'))}`;
    return 'ws.' + credentialDigest(`${scope}\u0000${key}`);
  }
}
