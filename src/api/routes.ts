/**
 * The server API over HTTP (docs/api.md): `POST /api/<call>` with a JSON body (empty for none), the publish API's
 * keys and scopes (`Authorization: Bearer <key>`; in --dev, keyless from this machine), a JSON answer. One route
 * table entry per call, built from ServerApiCalls.table; `/api/publish` stays the publish API's (http/publish.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiKeyScope } from '../auth/api-key.js';
import { HeraldError } from '../errors.js';
import { parseJsonBody, readBody } from '../http/body.js';
import { headerOf } from '../http/request.js';
import type { RouteHandler } from '../http/router.js';
import { sendJson } from '../http/respond.js';
import { argsOf } from './args.js';
import type { CallName, ServerApiCalls } from './calls.js';

export interface ServerApiOptions {
  readonly calls: ServerApiCalls;
  /** The publish API's check of the request head (http/publish.ts `authenticate`): 401/403 or the key's scope. */
  authenticate(req: IncomingMessage): ApiKeyScope;
  readonly maxBodyBytes: number;
  readonly maxJsonDepth: number;
}

export interface ApiRoute {
  readonly path: string;
  readonly handler: RouteHandler;
  readonly allow: 'POST';
}

/** The route table: `/api/presence`, `/api/presence_stats`, ... one per call. */
export function serverApiRoutes(options: ServerApiOptions): ApiRoute[] {
  return (Object.keys(options.calls.table) as CallName[]).map((name) => ({
    path: `/api/${name}`,
    handler: (req, res) => answer(options, name, req, res),
    allow: 'POST',
  }));
}

async function answer(options: ServerApiOptions, name: CallName, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== 'POST') throw new HeraldError('method_not_allowed', 'use POST');
  if ((req.headersDistinct['authorization']?.length ?? 0) > 1) throw new HeraldError('bad_request', 'more than one Authorization header');
  const scope = options.authenticate(req);
  const bytes = await readBody(req, options.maxBodyBytes);
  const contentType = (headerOf(req)('content-type') ?? '').split(';')[0]?.trim().toLowerCase();
  if (bytes.length > 0 && contentType !== 'application/json') {
    throw new HeraldError('bad_request', 'the body must be JSON (Content-Type: application/json)');
  }
  const args = argsOf(bytes.length === 0 ? undefined : parseJsonBody(bytes, options.maxJsonDepth));
  const result = await options.calls.run(name, args, scope);
  sendJson(res, 200, result);
}

