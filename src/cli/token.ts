/**
 * `herald token --channel C [--channel C2 ...] [--sub USER] [--ttl SECONDS] [--publish] [--aud A] [--iss I]`:
 * print a subscription token (HS256 JWT) signed with the configured secret.
 */
import { signToken } from '../auth/jwt.js';
import { ConfigError, resolveConfig, type HeraldConfig } from '../config.js';
import { HeraldError } from '../errors.js';
import { configSources, parseCommand, type CommandSpec } from './command.js';

const USAGE = 'usage: herald token --channel C [--channel C2 ...] [--sub USER] [--ttl SECONDS] [--publish]';

export const TOKEN: CommandSpec = {
  name: 'token',
  summary: 'Print a subscription token (an HS256 JWT signed with the secret) granting the channels given.',
  flags: {
    channel: { type: 'string', multiple: true, value: 'C', help: 'a channel the token grants (repeatable; at least one)' },
    sub: { type: 'string', value: 'USER', help: 'the subject (user id) of the token' },
    ttl: { type: 'string', value: 'SECONDS', help: 'seconds until the token expires', default: '3600' },
    publish: { type: 'boolean', help: 'let WebSocket clients holding it publish to its channels' },
    info: { type: 'string', value: 'JSON', help: 'the info claim: user info presence members carry (any JSON)' },
    aud: { type: 'string', value: 'A', help: 'audience claim', default: 'the first of jwtAudience' },
    iss: { type: 'string', value: 'I', help: 'issuer claim', default: 'the first of jwtIssuers' },
  },
  settings: 'accept',
  notes: ['example: HERALD_SECRET=... herald token --channel chat:lobby --sub alice --ttl 600'],
};

export async function tokenCommand(argv: string[], env: Record<string, string | undefined>): Promise<number> {
  const parsed = parseCommand(argv, TOKEN);
  const channels = (parsed.values['channel'] as string[] | undefined) ?? [];
  if (channels.length === 0 || parsed.positionals.length > 0) throw new ConfigError('arguments', USAGE);
  const config = resolveConfig(configSources(parsed, env));
  const str = (k: string): string | undefined => (typeof parsed.values[k] === 'string' ? (parsed.values[k] as string) : undefined);
  try {
    const token = await signToken({
      secret: secretFor(config),
      channels,
      subject: str('sub'),
      ttlSeconds: ttlOf(parsed.values['ttl'], 3600),
      publish: parsed.values['publish'] === true,
      ...(str('info') !== undefined ? { info: infoOf(str('info') as string) } : {}),
      audience: str('aud') ?? config.jwtAudience[0],
      issuer: str('iss') ?? config.jwtIssuers[0],
    });
    process.stdout.write(token + '\n');
  } catch (err) {
    if (err instanceof HeraldError) throw new ConfigError('--channel', err.message);
    throw err;
  }
  return 0;
}

/** The signing secret: HERALD_SECRET (or --secret, or the config file). */
export function secretFor(config: HeraldConfig): string {
  if (config.secret === '') throw new ConfigError('HERALD_SECRET', 'a secret is needed to sign (set HERALD_SECRET)');
  return config.secret;
}

function infoOf(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ConfigError('--info', 'must be JSON text, e.g. \'{"name":"Alice"}\'');
  }
}

export function ttlOf(raw: unknown, fallback: number): number {
  if (raw === undefined) return fallback;
  const s = String(raw);
  if (!/^\d+$/.test(s) || Number(s) <= 0) throw new ConfigError('--ttl', `"${s}" is not a positive number of seconds`);
  return Number(s);
}
