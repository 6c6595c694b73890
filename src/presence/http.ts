/**
 * `GET /presence`: a subscriber's own presence question over plain HTTP, for clients without a WebSocket (the SDK
 * over SSE or long-polling). The credentials are a subscription's (`channel=`, `key=`, `token=`, the token cookie)
 * and must name exactly one channel, which must keep presence. `stats=1` answers the counts only. The answers are
 * those of the `/ws` `presence` and `presence_stats` requests (docs/protocol.md).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SubscribeAuthorizer } from '../auth/grant.js';
import type { HeraldConfig } from '../config.js';
import { HeraldError } from '../errors.js';
import type { ClientAddress } from '../http/client-address.js';
import { streamRequestFromNode, subscribeCredentials } from '../http/request.js';
import { sendJson } from '../http/respond.js';
import { memberObject } from './member.js';
import type { Presence } from './presence.js';

export function presenceRoute(presence: Presence, authorizer: SubscribeAuthorizer, config: HeraldConfig, clients: ClientAddress) {
  return async (req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> => {
    if (req.method !== 'GET') throw new HeraldError('method_not_allowed', 'use GET');
    const sreq = streamRequestFromNode(req, query, clients);
    const creds = subscribeCredentials(sreq, config.tokenCookie);
    if (creds.channels.length + creds.keys.length !== 1) throw new HeraldError('bad_request', 'name exactly one channel (channel= or key=)');
    const auth = await authorizer.authorize(creds);
    const target = auth.targets[0];
    if (!target) throw new HeraldError('bad_request', 'name exactly one channel (channel= or key=)');
    if (!presence.enabled(target.channel)) throw new HeraldError('forbidden', 'presence is not on for this channel');
    if (query.get('stats') === '1') {
      sendJson(res, 200, { channel: target.label, ...(await presence.stats(target.channel)) });
      return;
    }
    const answer = await presence.members(target.channel);
    sendJson(res, 200, { channel: target.label, members: answer.members.map(memberObject), truncated: answer.truncated });
  };
}
