/**
 * The auth hook's answer is hostile input like any other: it is bounded (`MAX_ANSWER_BYTES`, read by hook.ts) and
 * checked here field by field before anything of it becomes a grant. An answer that is not a clear decision is a
 * failure of the hook (its failure policy applies), never an "allow".
 */
import { channelProblem } from '../protocol/channel.js';
import { parseChannelGrant, type ChannelGrant } from './grant.js';

/** Largest answer body read; a longer one is a failure. */
export const MAX_ANSWER_BYTES = 64 * 1024;
/** Channel entries an answer may grant. */
export const MAX_ANSWER_CHANNELS = 1000;
const MAX_USER_CHARS = 256;
const MAX_REASON_CHARS = 200;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** A decision the backend made. */
export type HookDecision =
  | {
      readonly allow: true;
      readonly user?: string;
      /** Undefined: exactly the channels asked for. */
      readonly channels?: readonly ChannelGrant[];
      /** Milliseconds since the epoch. */
      readonly expiresAt?: number;
      /** Seconds the backend lets Herald reuse the answer (capped by authHookCacheSeconds). */
      readonly ttlSeconds?: number;
      /**
       * Free JSON about the user (presence shows it), as JSON text: made once per answer, so the connections that a
       * cached answer lets in share one string.
       */
      readonly info?: string;
    }
  | { readonly allow: false; readonly status: 401 | 403; readonly reason?: string; readonly ttlSeconds?: number };

export class BadAnswer extends Error {}

/** A 200 answer's JSON text → a decision, or BadAnswer saying what is wrong with it. */
export function parseAnswer(text: string): HookDecision {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new BadAnswer('not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new BadAnswer('not a JSON object');
  const o = v as Record<string, unknown>;
  const ttlSeconds = optionalTtl(o['ttl']);
  if (o['allow'] === false) {
    return { allow: false, status: 403, ...reason(o['reason']), ...(ttlSeconds !== undefined ? { ttlSeconds } : {}) };
  }
  if (o['allow'] !== true) throw new BadAnswer('"allow" must be true or false');
  const user = o['user'];
  if (user !== undefined && (typeof user !== 'string' || user.length === 0 || user.length > MAX_USER_CHARS || CONTROL.test(user))) {
    throw new BadAnswer(`"user" must be a string of 1-${MAX_USER_CHARS} characters without control characters`);
  }
  let channels: ChannelGrant[] | undefined;
  if (o['channels'] !== undefined) {
    const list = o['channels'];
    if (!Array.isArray(list) || list.length > MAX_ANSWER_CHANNELS) throw new BadAnswer(`"channels" must be a list of at most ${MAX_ANSWER_CHANNELS}`);
    channels = list.map((entry) => {
      if (typeof entry !== 'string') throw new BadAnswer('"channels" entries must be strings');
      // `*` alone grants every channel; `a.*` the channels starting with `a.`.
      const name = entry.endsWith('*') ? entry.slice(0, -1) : entry;
      const problem = name === '' && entry === '*' ? undefined : channelProblem(name);
      if (problem) throw new BadAnswer(`"channels": ${problem}`);
      return parseChannelGrant(entry);
    });
  }
  let expiresAt: number | undefined;
  if (o['expiresAt'] !== undefined) {
    const e = o['expiresAt'];
    if (typeof e !== 'number' || !Number.isFinite(e) || e <= 0 || e > 1e11) throw new BadAnswer('"expiresAt" must be Unix seconds');
    expiresAt = Math.floor(e * 1000);
  }
  return {
    allow: true,
    ...(user !== undefined ? { user: user as string } : {}),
    ...(channels ? { channels } : {}),
    ...(expiresAt !== undefined ? { expiresAt } : {}),
    ...(ttlSeconds !== undefined ? { ttlSeconds } : {}),
    ...(o['info'] !== undefined ? { info: JSON.stringify(o['info']) } : {}),
  };
}

function optionalTtl(v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new BadAnswer('"ttl" must be seconds, 0 or more');
  return v;
}

/** The backend's reason for a denial, shown to the client: kept only when short, printable text. */
export function reason(v: unknown): { reason?: string } {
  if (typeof v !== 'string' || v.length === 0) return {};
  // eslint-disable-next-line no-control-regex
  const clean = v.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ').slice(0, MAX_REASON_CHARS);
  return { reason: clean };
}
