/** Turning `--flag value` arguments into config flags, with node's own parseArgs. */
import { parseArgs } from 'node:util';
import { ConfigError, DEFAULTS, flagName, SETTING_NAMES, type ConfigSources, type HeraldConfig } from '../config.js';

type OptionSpec = { type: 'string' | 'boolean'; multiple?: boolean; short?: string };

/** parseArgs options for every config setting, plus `extra`. */
export function settingOptions(extra: Record<string, OptionSpec> = {}): Record<string, OptionSpec> {
  const options: Record<string, OptionSpec> = { config: { type: 'string' }, ...extra };
  for (const key of SETTING_NAMES) {
    const def = DEFAULTS[key];
    options[flagName(key).slice(2)] = typeof def === 'boolean' ? { type: 'boolean' } : { type: 'string', multiple: Array.isArray(def) };
  }
  // Singular aliases read better on the command line: --api-key K --allowed-origin O.
  options['api-key'] = { type: 'string', multiple: true };
  options['allowed-origin'] = { type: 'string', multiple: true };
  return options;
}

export interface ParsedCommand {
  positionals: string[];
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
}

export function parseCommand(argv: string[], options: Record<string, OptionSpec>): ParsedCommand {
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    return { values: values as ParsedCommand['values'], positionals };
  } catch (err) {
    // parseArgs says e.g. "Unknown option '--prot'": name it as a setting problem (exit code 2).
    const msg = err instanceof Error ? err.message : String(err);
    const m = /'(--?[\w-]+)/.exec(msg);
    throw new ConfigError(m?.[1] ?? 'arguments', msg.replace(/\. To specify.*$/s, ''));
  }
}

/** The config-relevant flags of a parsed command, keyed by setting name. */
export function configSources(parsed: ParsedCommand, env: Record<string, string | undefined>): ConfigSources {
  const flags: NonNullable<ConfigSources['flags']> = {};
  for (const key of SETTING_NAMES) {
    const v = parsed.values[flagName(key).slice(2)];
    if (v !== undefined) flags[key] = v as string | string[] | boolean;
  }
  const addList = (key: keyof HeraldConfig, alias: string): void => {
    const v = parsed.values[alias];
    if (Array.isArray(v)) flags[key] = [...((flags[key] as string[] | undefined) ?? []), ...(v as string[])];
  };
  addList('apiKeys', 'api-key');
  addList('allowedOrigins', 'allowed-origin');
  const configFile = typeof parsed.values['config'] === 'string' ? parsed.values['config'] : undefined;
  return { flags, env, configFile };
}
