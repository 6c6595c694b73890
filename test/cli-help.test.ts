/**
 * `--help` on every command, through the real `herald` binary: exit 0, the command's usage, and every flag the
 * command parses, with the defaults the table gives. The help is made from the table the command parses with, so
 * a flag missing here is a flag the parser and the help disagree about. Also `herald --version`.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { flagsOf, type CommandSpec } from '../src/cli/command.js';
import { CONFIG_CHECK, CONFIG_INIT, CONFIG_PRINT, CONFIG_SCHEMA } from '../src/cli/config-command.js';
import { KEY } from '../src/cli/key.js';
import { PUBLISH } from '../src/cli/publish.js';
import { SERVE } from '../src/cli/serve.js';
import { TOKEN } from '../src/cli/token.js';
import { SETTING_NAMES, settingInfo } from '../src/config.js';
import { killAll, ROOT, runHerald } from './helpers/cli.js';

after(killAll);

const SPECS: CommandSpec[] = [SERVE, PUBLISH, TOKEN, KEY, CONFIG_INIT, CONFIG_CHECK, CONFIG_PRINT, CONFIG_SCHEMA];

test('--help on every command (and -h): exit 0, its usage, every flag it parses', async (t) => {
  await Promise.all(
    SPECS.map((spec) =>
      t.test(`herald ${spec.name} --help`, async () => {
        const r = await runHerald([...spec.name.split(' '), '--help']);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stderr, '');
        assert.match(r.stdout, new RegExp(`^usage: herald ${spec.name}\\b`));
        const listed = spec.settings === 'list' ? Object.keys(flagsOf(spec)) : [...Object.keys(spec.flags), 'help'];
        for (const flag of listed) assert.match(r.stdout, new RegExp(`--${flag}\\b`), `--${flag} in herald ${spec.name} --help`);
        for (const [name, flag] of Object.entries(spec.flags)) {
          if (flag.default !== undefined) assert.ok(r.stdout.includes(`[default: ${flag.default}]`), `default of --${name}`);
        }
      }),
    ),
  );
  // -h is the same flag (one process per spelling would only repeat the above).
  for (const name of ['serve', 'config init']) {
    const r = await runHerald([...name.split(' '), '-h']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^usage: herald ${name}\\b`));
  }
});

test('herald serve --help lists every setting with its variable and default', async () => {
  const r = await runHerald(['serve', '--help']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n');
  for (const key of SETTING_NAMES) {
    const info = settingInfo(key);
    const i = lines.findIndex((l) => l.startsWith(`  ${info.flag} `) || l === `  ${info.flag}`);
    assert.ok(i >= 0, `${info.flag} listed`);
    // A long flag puts its text on the next line.
    const text = `${lines[i] ?? ''} ${lines[i + 1] ?? ''}`;
    assert.ok(text.includes(info.env), `${info.flag} names ${info.env}`);
    const shown = info.defaultText ?? (typeof info.default === 'string' ? info.default || '""' : JSON.stringify(info.default));
    assert.ok(text.includes(`[default: ${shown}]`), `${info.flag} shows its default ${shown}: ${text}`);
  }
});

test('herald --help lists the commands; herald help serve is herald serve --help; bench answers --help', async () => {
  const [top, viaHelp, bench, config, bare] = await Promise.all([
    runHerald(['--help']),
    runHerald(['help', 'serve']),
    runHerald(['bench', '--help']),
    runHerald(['config', '--help']),
    runHerald([]),
  ]);
  assert.equal(top.code, 0);
  for (const c of ['serve', 'publish', 'token', 'key', 'config', 'bench']) assert.match(top.stdout, new RegExp(`^  ${c}\\b`, 'm'));
  assert.match(top.stdout, /--version/);
  assert.equal(viaHelp.code, 0);
  assert.match(viaHelp.stdout, /^usage: herald serve/);
  assert.equal(bench.code, 0);
  assert.match(bench.stdout, /^usage: herald bench/);
  assert.equal(config.code, 0);
  for (const c of ['init', 'check', 'print', 'schema']) assert.match(config.stdout, new RegExp(`^  ${c}\\b`, 'm'));
  assert.equal(bare.code, 2, 'no command: usage on stderr, exit 2');
  assert.match(bare.stderr, /^usage: herald/);
});

test('herald --version prints the version of package.json', async () => {
  const { version } = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { version: string };
  const [long, short] = await Promise.all([runHerald(['--version']), runHerald(['-V'])]);
  assert.equal(long.code, 0);
  assert.equal(long.stdout, `herald ${version}\n`);
  assert.equal(short.stdout, `herald ${version}\n`);
});

test('an unknown flag names the flag it resembles', async () => {
  const r = await runHerald(['serve', '--dev', '--prot', '9000']);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, "herald: invalid setting --prot: Unknown option '--prot' (did you mean --port?)\n");
});
