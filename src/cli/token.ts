/**
 * `herald token --channel C [--channel C2 ...] [--sub USER] [--ttl SECONDS] [--publish] [--aud A] [--iss I]`:
 * print a subscription token (HS256 JWT) signed with the configured secret.
 */
import { signToken } from '../auth/jwt.js';
import { ConfigError, resolveConfig, type HeraldConfig } from '../config.js';
import { HeraldError } from '../errors.js';
import { configSources, parseCommand, settingOptions } from './args.js';

const USAGE = 'usage: herald token --channel C [--channel C2 ...] [--sub USER] [--ttl SECONDS] [--publish]';

export async function tokenCommand(argv: string[], env: Record<string, string | undefined>): Promise<number> {
  const parsed = parseCommand(
    argv,
    settingOptions({
      channel: { type: 'string', multiple: true },
      sub: { type: 'string' },
      ttl: { type: 'string' },
      publish: { type: 'boolean' },
      aud: { type: 'string' },
      iss: { type: 'string' },
    }),
  );
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

export function ttlOf(raw: unknown, fallback: number): number {
  if (raw === undefined) return fallback;
  const s = String(raw);
  if (!/^\d+$/.test(s) || Number(s) <= 0) throw new ConfigError('--ttl', `"${s}" is not a positive number of seconds`);
  return Number(s);
}
