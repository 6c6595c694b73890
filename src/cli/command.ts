/**
 * One table per command: its flags, each with its help line and default. The table is what `parseArgs` parses and
 * what `--help` prints, so the two cannot drift apart. Commands that take settings (serve, config, token, key) get
 * a flag for every setting of src/config.ts, with the setting's own doc line and default.
 */
import { parseArgs } from 'node:util';
import {
  ConfigError,
  flagName,
  SETTING_NAMES,
  settingInfo,
  type ConfigSources,
  type HeraldConfig,
  type SettingInfo,
  unknownVariables,
} from '../config.js';
import { closest } from '../util/closest.js';

export interface FlagSpec {
  readonly type: 'string' | 'boolean';
  readonly multiple?: boolean;
  readonly short?: string;
  /** The value's placeholder in help: `--server URL`. */
  readonly value?: string;
  readonly help: string;
  /** The default, as help shows it. */
  readonly default?: string;
}

export interface CommandSpec {
  /** `publish`, `config init`, ... */
  readonly name: string;
  /** Positionals after the name: `CHANNEL DATA`. */
  readonly args?: string;
  readonly summary: string;
  readonly flags: Readonly<Record<string, FlagSpec>>;
  /**
   * `list`: every setting is a flag of this command and help lists them all (serve, config print);
   * `accept`: they are flags too, help names them in one line (token, key: only the secret matters there).
   */
  readonly settings?: 'list' | 'accept';
  /** Lines after the flags: examples, where to read more. */
  readonly notes?: readonly string[];
}

const HELP_FLAG: FlagSpec = { type: 'boolean', short: 'h', help: 'show this help' };
const CONFIG_FLAG: FlagSpec = { type: 'string', value: 'FILE', help: 'JSON config file (comments allowed)', default: '$HERALD_CONFIG' };

/** Singular aliases read better on the command line: --api-key K --allowed-origin O. */
const LIST_ALIASES: Readonly<Record<string, keyof HeraldConfig>> = { 'api-key': 'apiKeys', 'allowed-origin': 'allowedOrigins' };

/** Every flag of a command: its own, --help, and the settings' when it takes them. */
export function flagsOf(spec: CommandSpec): Record<string, FlagSpec> {
  const flags: Record<string, FlagSpec> = { ...spec.flags, help: HELP_FLAG };
  if (!spec.settings) return flags;
  flags['config'] = CONFIG_FLAG;
  for (const key of SETTING_NAMES) flags[flagName(key).slice(2)] = settingFlag(settingInfo(key));
  for (const [alias, key] of Object.entries(LIST_ALIASES)) {
    flags[alias] = { type: 'string', multiple: true, value: 'VALUE', help: `one of ${flagName(key)} (repeatable)` };
  }
  return flags;
}

const PLACEHOLDERS: Record<SettingInfo['kind'], string> = { int: 'N', string: 'VALUE', bool: '', list: 'A,B', json: 'JSON' };

function settingFlag(info: SettingInfo): FlagSpec {
  const isBool = info.kind === 'bool';
  return {
    type: isBool ? 'boolean' : 'string',
    ...(info.kind === 'list' ? { multiple: true } : {}),
    ...(isBool ? {} : { value: info.oneOf ? info.oneOf.join('|') : PLACEHOLDERS[info.kind] }),
    help: `${info.doc} (${info.env})`,
    default: info.defaultText ?? showDefault(info.default),
  };
}

function showDefault(value: unknown): string {
  return typeof value === 'string' ? (value === '' ? '""' : value) : JSON.stringify(value);
}

export interface ParsedCommand {
  positionals: string[];
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
}

export function parseCommand(argv: string[], spec: CommandSpec): ParsedCommand {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {};
  for (const [name, flag] of Object.entries(flagsOf(spec))) {
    options[name] = { type: flag.type, ...(flag.multiple ? { multiple: true } : {}), ...(flag.short ? { short: flag.short } : {}) };
  }
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    return { values: values as ParsedCommand['values'], positionals };
  } catch (err) {
    // parseArgs says e.g. "Unknown option '--prot'": name it as a setting problem (exit code 2).
    const msg = err instanceof Error ? err.message : String(err);
    const m = /'(--?[\w-]+)/.exec(msg);
    throw new ConfigError(m?.[1] ?? 'arguments', msg.replace(/\. To specify.*$/s, '') + hintFor(m?.[1], spec));
  }
}

/** ` (did you mean --port?)` for an unknown flag near a known one, else where the flags are listed. */
function hintFor(flag: string | undefined, spec: CommandSpec): string {
  if (!flag?.startsWith('--')) return '';
  const near = closest(flag.slice(2), Object.keys(flagsOf(spec)));
  return near ? ` (did you mean --${near}?)` : `; see herald ${spec.name} --help`;
}

/** The config-relevant flags of a parsed command, keyed by setting name. */
export function configSources(parsed: ParsedCommand, env: Record<string, string | undefined>): ConfigSources {
  const flags: NonNullable<ConfigSources['flags']> = {};
  for (const key of SETTING_NAMES) {
    const v = parsed.values[flagName(key).slice(2)];
    if (v !== undefined) flags[key] = v as string | string[] | boolean;
  }
  for (const [alias, key] of Object.entries(LIST_ALIASES)) {
    const v = parsed.values[alias];
    if (Array.isArray(v)) flags[key] = [...((flags[key] as string[] | undefined) ?? []), ...(v as string[])];
  }
  const configFile = typeof parsed.values['config'] === 'string' ? parsed.values['config'] : undefined;
  return { flags, env, configFile };
}

/** `herald NAME --help`: usage, summary, then one line per flag with its default. */
export function helpText(spec: CommandSpec): string {
  const own = { ...spec.flags, help: HELP_FLAG, ...(spec.settings ? { config: CONFIG_FLAG } : {}) };
  const lines = [`usage: herald ${spec.name}${spec.args ? ' ' + spec.args : ''} [options]`, '', spec.summary, '', 'options:'];
  lines.push(...flagLines(own));
  if (spec.settings === 'list') {
    lines.push('', 'settings (flag, then its environment variable; the config file key is the camelCase name):');
    const settingFlags = flagsOf(spec);
    for (const name of [...Object.keys(own), ...Object.keys(LIST_ALIASES)]) delete settingFlags[name];
    lines.push(...flagLines(settingFlags));
    lines.push(`  --api-key KEY, --allowed-origin ORIGIN   one entry of --api-keys, --allowed-origins (repeatable)`);
  } else if (spec.settings === 'accept') {
    lines.push('  ...every setting of herald serve (--secret, ...), the environment and --config, as herald serve reads them');
  }
  if (spec.notes?.length) lines.push('', ...spec.notes);
  return lines.join('\n') + '\n';
}

const FLAG_COLUMN = 34;

function flagLines(flags: Record<string, FlagSpec>): string[] {
  return Object.entries(flags).map(([name, flag]) => {
    const head = `  ${flag.short ? `-${flag.short}, ` : ''}--${name}${flag.value ? ' ' + flag.value : ''}`;
    const tail = flag.help + (flag.default !== undefined ? ` [default: ${flag.default}]` : '');
    return head.length < FLAG_COLUMN ? head.padEnd(FLAG_COLUMN) + tail : `${head}\n${' '.repeat(FLAG_COLUMN)}${tail}`;
  });
}

/** A command that cannot go on, for a reason that is not a bad setting (a busy port): one line, exit code 1. */
export class CommandFailure extends Error {
  override name = 'CommandFailure';
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}

/**
 * What the user probably did not mean, said before the command runs: `HERALD_*` variables nothing reads
 * (`HERALD_PROT=9000`), and arguments a command without positionals would ignore (`herald serve 9000`).
 */
export function commandWarnings(parsed: ParsedCommand, env: Record<string, string | undefined>, spec: CommandSpec): string[] {
  const warnings = unknownVariables(env).map((u) => u.message);
  if (spec.args === undefined) {
    for (const arg of parsed.positionals) {
      warnings.push(`stray argument "${arg}" ignored: herald ${spec.name} takes no arguments (flags start with --; see --help)`);
    }
  }
  return warnings;
}
