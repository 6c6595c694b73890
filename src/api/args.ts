/** Reading a server API call's JSON arguments: each field checked, with the documented 400 answers. */
import { HeraldError } from '../errors.js';
import { channelProblem } from '../protocol/channel.js';

export type Args = Record<string, unknown>;

export function argsOf(body: unknown): Args {
  if (body === undefined) return {};
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HeraldError('bad_request', 'body must be a JSON object');
  return body as Args;
}

/** A channel named by the subscription rules (1-255 bytes of UTF-8, no control characters). */
export function channelArg(args: Args, field = 'channel'): string {
  const v = args[field];
  if (v === undefined) throw new HeraldError('bad_request', `"${field}" is missing`);
  if (typeof v !== 'string') throw new HeraldError('invalid_channel', `"${field}" must be a string`);
  const problem = channelProblem(v);
  if (problem) throw new HeraldError('invalid_channel', problem);
  return v;
}

export function optionalString(args: Args, field: string, maxChars: number): string | undefined {
  const v = args[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new HeraldError('bad_request', `"${field}" must be a string`);
  if (v.length > maxChars) throw new HeraldError('bad_request', `"${field}" is over ${maxChars} characters`);
  return v;
}

export function intArg(args: Args, field: string, min: number, max: number, fallback: number): number {
  const v = args[field];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new HeraldError('bad_request', `"${field}" must be a whole number from ${min} to ${max}`);
  }
  return v;
}

export function optionalBool(args: Args, field: string): boolean | undefined {
  const v = args[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw new HeraldError('bad_request', `"${field}" must be true or false`);
  return v;
}

/** Client ids are `<node id>-<n>` (core/node.ts). */
const CLIENT_ID = /^[0-9a-z]{1,32}-[0-9a-z]{1,11}$/;

/** Exactly one of `user` and `client` (the call acts on a user's connections, or on one connection). */
export function whoArg(args: Args): { user: string } | { client: string } {
  const user = optionalString(args, 'user', 255);
  const client = optionalString(args, 'client', 64);
  if ((user === undefined) === (client === undefined)) throw new HeraldError('bad_request', 'give one of "user" or "client"');
  if (client !== undefined) {
    if (!CLIENT_ID.test(client)) throw new HeraldError('bad_request', '"client" is not a client id (<node>-<n>)');
    return { client };
  }
  if (user === '') throw new HeraldError('bad_request', '"user" is empty');
  return { user: user as string };
}
