/**
 * The `herald` command: dispatch to a subcommand. `--help` anywhere before `--` prints that command's help, made
 * from the table it parses with (./command.ts). A bad setting prints one line and exits with code 2; a command that
 * cannot go on (a busy port) one line and exit code 1; neither prints a stack.
 */
import { ConfigError } from '../config.js';
import { VERSION } from '../version.js';
import { CommandFailure, helpText, type CommandSpec } from './command.js';
import { CONFIG_CHECK, CONFIG_INIT, CONFIG_PRINT, CONFIG_SCHEMA, configCheck, configInit, configPrint, configSchemaCommand } from './config-command.js';
import { KEY, keyCommand } from './key.js';
import { PUBLISH, publishCommand } from './publish.js';
import { SERVE, serve } from './serve.js';
import { TOKEN, tokenCommand } from './token.js';

type Env = Record<string, string | undefined>;
type Run = (argv: string[], env: Env) => Promise<number>;

interface Command {
  /** The one line `herald --help` shows. */
  readonly summary: string;
  /** The command's table; without one (bench) the command answers --help itself. */
  readonly spec?: CommandSpec;
  readonly run?: Run;
  /** A command of commands (`config init`, ...). */
  readonly sub?: Readonly<Record<string, Command>>;
}

const leaf = (spec: CommandSpec, run: Run): Command => ({ summary: firstSentence(spec.summary), spec, run });

const CONFIG_COMMANDS: Record<string, Command> = {
  init: leaf(CONFIG_INIT, configInit),
  check: leaf(CONFIG_CHECK, configCheck),
  print: leaf(CONFIG_PRINT, configPrint),
  schema: leaf(CONFIG_SCHEMA, configSchemaCommand),
};

const COMMANDS: Record<string, Command> = {
  serve: leaf(SERVE, serve),
  publish: leaf(PUBLISH, publishCommand),
  token: leaf(TOKEN, tokenCommand),
  key: leaf(KEY, keyCommand),
  config: { summary: 'Write, check and print config files: init, check, print, schema.', sub: CONFIG_COMMANDS },
  bench: {
    summary: 'The load generator: see herald bench --help and docs/benchmarks.md.',
    run: async (argv, env) => (await import('../../bench/cli.js')).benchCommand(argv, env),
  },
};

function firstSentence(text: string): string {
  const end = text.search(/[.:](\s|$)/);
  return end === -1 ? text : text.slice(0, end + 1).replace(/:$/, '.');
}

function listing(prefix: string, commands: Readonly<Record<string, Command>>, tail: string[]): string {
  const rows = Object.entries(commands).map(([name, c]) => {
    const head = `${name}${c.spec?.args ? ' ' + c.spec.args : ''}`;
    return `  ${head.padEnd(22)}${c.summary}`;
  });
  return [`usage: ${prefix} <command> [options]`, '', 'commands:', ...rows, '', ...tail].join('\n') + '\n';
}

const TOP_HELP = listing('herald', COMMANDS, [
  'options:',
  '  -h, --help            this help; herald COMMAND --help shows a command\'s flags and their defaults',
  '  -V, --version         print the version',
  '',
  'Start here: herald serve --dev. Every setting: herald serve --help, docs/configuration.md.',
]);

/** `--help` or `-h` among the arguments, before a `--` that ends the options. */
function wantsHelp(argv: string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

async function dispatch(prefix: string, commands: Readonly<Record<string, Command>>, help: string, argv: string[], env: Env): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    // `herald help serve` is `herald serve --help`.
    if (name === 'help' && rest[0] !== undefined && commands[rest[0]]) return dispatch(prefix, commands, help, [rest[0], '--help'], env);
    (name === undefined ? process.stderr : process.stdout).write(help);
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`${prefix}: unknown command "${name}"\n${help}`);
    return 2;
  }
  if (command.sub) return dispatch(`${prefix} ${name}`, command.sub, listing(`${prefix} ${name}`, command.sub, []), rest, env);
  if (command.spec && wantsHelp(rest)) {
    process.stdout.write(helpText(command.spec));
    return 0;
  }
  return command.run ? command.run(rest, env) : 2;
}

export async function main(argv: string[], env: Env = process.env): Promise<number> {
  if (argv[0] === '--version' || argv[0] === '-V' || argv[0] === 'version') {
    process.stdout.write(`herald ${VERSION}\n`);
    return 0;
  }
  try {
    return await dispatch('herald', COMMANDS, TOP_HELP, argv, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`herald: ${err.message}\n`);
      return 2;
    }
    if (err instanceof CommandFailure) {
      process.stderr.write(`herald: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  }
}
