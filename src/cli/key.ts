/** `herald key CHANNEL [--ttl SECONDS]`: print a sealed channel key made with the configured secret. */
import { sealChannel } from '../auth/sealed-key.js';
import { ConfigError, resolveConfig } from '../config.js';
import { HeraldError } from '../errors.js';
import { configSources, parseCommand, type CommandSpec } from './command.js';
import { secretFor, ttlOf } from './token.js';

export const KEY: CommandSpec = {
  name: 'key',
  args: 'CHANNEL',
  summary: "Print a sealed channel key for CHANNEL (its name encrypted and authenticated with the secret): a client subscribes with key=K and never learns the channel's name.",
  flags: { ttl: { type: 'string', value: 'SECONDS', help: 'the key expires after SECONDS', default: 'never' } },
  settings: 'accept',
  notes: ['example: HERALD_SECRET=... herald key orders:42 --ttl 3600'],
};

export async function keyCommand(argv: string[], env: Record<string, string | undefined>): Promise<number> {
  const parsed = parseCommand(argv, KEY);
  const [channel, ...rest] = parsed.positionals;
  if (channel === undefined || rest.length > 0) throw new ConfigError('arguments', 'usage: herald key CHANNEL [--ttl SECONDS]');
  const config = resolveConfig(configSources(parsed, env));
  try {
    const key = sealChannel(channel, { secret: secretFor(config), ttlSeconds: ttlOf(parsed.values['ttl'], 0) });
    process.stdout.write(key + '\n');
  } catch (err) {
    if (err instanceof HeraldError) throw new ConfigError('CHANNEL', err.message);
    throw err;
  }
  return 0;
}
