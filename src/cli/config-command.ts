/**
 * `herald config init [FILE] | check FILE | print | schema`: write a starter config, validate one, show the
 * settings a node would run with, and print the config file's JSON Schema.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { checkConfig, resolveConfig, SETTING_NAMES, settingInfo, type HeraldConfig } from '../config.js';
import { redactUrl } from '../util/redact.js';
import { CommandFailure, commandWarnings, configSources, parseCommand, type CommandSpec } from './command.js';
import { configSchema } from './config-schema.js';

type Env = Record<string, string | undefined>;

export const CONFIG_INIT: CommandSpec = {
  name: 'config init',
  args: '[FILE]',
  summary: 'Write a commented starter config file (FILE, default herald.json; - for stdout) with a fresh secret and API key.',
  flags: { force: { type: 'boolean', help: 'overwrite FILE if it exists' } },
  notes: ['The file is created readable by its owner only (it holds the secret). Then: herald config check FILE; herald serve --config FILE.'],
};

export const CONFIG_CHECK: CommandSpec = {
  name: 'config check',
  args: 'FILE',
  summary: 'Validate FILE as herald serve --config FILE would read it here (HERALD_* variables included): "FILE: ok" and exit 0, or one line per problem and exit 1.',
  flags: {},
};

export const CONFIG_PRINT: CommandSpec = {
  name: 'config print',
  summary: 'Print the effective settings (defaults, --config FILE, HERALD_* variables, flags) as JSON, secrets masked.',
  flags: {},
  settings: 'accept',
};

export const CONFIG_SCHEMA: CommandSpec = {
  name: 'config schema',
  summary: 'Print the JSON Schema of the config file, for editors: herald config schema > herald.schema.json, then "$schema": "./herald.schema.json" in the file.',
  flags: {},
};

const warn = (line: string): void => void process.stderr.write(`herald: warning: ${line}\n`);

export async function configInit(argv: string[], env: Env): Promise<number> {
  const parsed = parseCommand(argv, CONFIG_INIT);
  if (parsed.positionals.length > 1) throw new CommandFailure('usage: herald config init [FILE] [--force]', 2);
  commandWarnings(parsed, env, CONFIG_INIT).forEach(warn);
  const file = parsed.positionals[0] ?? 'herald.json';
  const text = starterConfig();
  if (file === '-') {
    process.stdout.write(text);
    return 0;
  }
  try {
    // 'wx' refuses an existing file (no check-then-write race); 0600 because the file holds the secret.
    writeFileSync(file, text, { flag: parsed.values['force'] === true ? 'w' : 'wx', mode: 0o600 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    if (code === 'EEXIST') throw new CommandFailure(`${file} exists: not overwritten (--force to replace it)`);
    throw new CommandFailure(`cannot write ${file}: ${code}`);
  }
  process.stdout.write(`wrote ${file}: check it with "herald config check ${file}", start with "herald serve --config ${file}"\n`);
  return 0;
}

export async function configCheck(argv: string[], env: Env): Promise<number> {
  const parsed = parseCommand(argv, CONFIG_CHECK);
  const [file, ...rest] = parsed.positionals;
  if (file === undefined || rest.length > 0) throw new CommandFailure('usage: herald config check FILE', 2);
  commandWarnings(parsed, env, CONFIG_CHECK).forEach(warn);
  const { problems } = checkConfig({ env, configFile: file });
  if (problems.length === 0) {
    process.stdout.write(`${file}: ok\n`);
    return 0;
  }
  for (const problem of problems) process.stderr.write(`${file}: ${problem.message}\n`);
  return 1;
}

export async function configPrint(argv: string[], env: Env): Promise<number> {
  const parsed = parseCommand(argv, CONFIG_PRINT);
  commandWarnings(parsed, env, CONFIG_PRINT).forEach(warn);
  const config = resolveConfig(configSources(parsed, env));
  process.stdout.write(JSON.stringify(masked(config), null, 2) + '\n');
  return 0;
}

export async function configSchemaCommand(argv: string[], env: Env): Promise<number> {
  const parsed = parseCommand(argv, CONFIG_SCHEMA);
  commandWarnings(parsed, env, CONFIG_SCHEMA).forEach(warn);
  process.stdout.write(JSON.stringify(configSchema(), null, 2) + '\n');
  return 0;
}

const MASK = '***';

/** The config with every secret setting masked (an empty one stays "", so "not set" still shows) and no broker password. */
export function masked(config: HeraldConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of SETTING_NAMES) {
    const value: unknown = config[key];
    out[key] = key === 'broker' ? redactUrl(value as string) : settingInfo(key).secret ? mask(value) : value;
  }
  return out;
}

function mask(value: unknown): unknown {
  if (typeof value === 'string') return value === '' ? '' : MASK;
  if (Array.isArray(value)) return value.map((v: unknown) => (typeof v === 'object' && v !== null ? { ...v, key: MASK } : MASK));
  return MASK;
}

/** A fresh random credential: 32 bytes, base64url (43 characters). */
function fresh(): string {
  return randomBytes(32).toString('base64url');
}

/** The settings a starter file shows, each with its doc line; the rest keep their defaults. */
const STARTER: readonly (keyof HeraldConfig)[] = [
  'port', 'host', 'broker', 'secret', 'apiKeys', 'allowedOrigins', 'maxConnections', 'maxConnectionsPerIp',
  'historySize', 'historyTtlSeconds', 'metricsToken', 'logLevel', 'namespaces',
];

export function starterConfig(): string {
  const values: Partial<Record<keyof HeraldConfig, unknown>> = { secret: fresh(), apiKeys: [fresh()] };
  const lines = [
    '// Herald configuration: herald serve --config FILE. Comments are allowed; unknown keys are errors.',
    '// Every setting, with its flag and HERALD_* variable (which win over this file): docs/configuration.md,',
    '// herald serve --help. Check a change with: herald config check FILE.',
    '// The secret and the API key below were generated for this file: keep it private.',
    '{',
  ];
  STARTER.forEach((key, i) => {
    const info = settingInfo(key);
    const value = values[key] ?? info.default;
    const choices = info.oneOf ? ` (${info.oneOf.join(', ')})` : '';
    lines.push(`  // ${info.doc}${choices}${info.defaultText ? ` [default: ${info.defaultText}]` : ''}`);
    lines.push(`  ${JSON.stringify(key)}: ${JSON.stringify(value)}${i < STARTER.length - 1 ? ',' : ''}`);
  });
  lines.push('}');
  return lines.join('\n') + '\n';
}
