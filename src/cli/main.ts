/** The `herald` command: dispatch to a subcommand. A bad setting prints one line and exits with code 2. */
import { ConfigError } from '../config.js';
import { keyCommand } from './key.js';
import { publishCommand } from './publish.js';
import { serve } from './serve.js';
import { tokenCommand } from './token.js';

const USAGE = `usage: herald <command> [options]

commands:
  serve     [--port 8080] [--host 0.0.0.0] [--broker memory|redis://HOST:PORT|redis-cluster://HOST:PORT,...] [--config FILE] [--dev]
  publish   CHANNEL DATA [--server URL | --broker URL] [--api-key KEY] [--json]
  token     --channel C [--channel C2 ...] [--sub USER] [--ttl SECONDS] [--publish]   a subscription token (JWT)
  key       CHANNEL [--ttl SECONDS]                                                   a sealed channel key
  bench     load generator: see docs/benchmarks.md

Every setting is listed in docs/configuration.md.
`;

type Command = (argv: string[], env: Record<string, string | undefined>) => Promise<number>;

const COMMANDS: Record<string, () => Promise<Command>> = {
  serve: async () => serve,
  publish: async () => publishCommand,
  token: async () => tokenCommand,
  key: async () => keyCommand,
  bench: async () => (await import('../../bench/cli.js')).benchCommand,
};

export async function main(argv: string[], env: Record<string, string | undefined> = process.env): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(USAGE);
    return name === undefined ? 2 : 0;
  }
  const load = COMMANDS[name];
  if (!load) {
    process.stderr.write(`herald: unknown command "${name}"\n${USAGE}`);
    return 2;
  }
  try {
    return await (await load())(rest, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`herald: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
