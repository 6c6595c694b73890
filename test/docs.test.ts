/** The configuration reference stays complete: every setting in src/config.ts has its row in docs/configuration.md. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { envName, flagName, SETTING_NAMES, settingInfo } from '../src/config.js';
import { ROOT } from './helpers/cli.js';

test('docs/configuration.md has a row for every setting, with its flag and environment variable', () => {
  const doc = readFileSync(`${ROOT}docs/configuration.md`, 'utf8');
  const rows = new Map<string, string>();
  for (const line of doc.split('\n')) {
    const m = /^\| (\w+) \|/.exec(line);
    if (m?.[1]) rows.set(m[1], line);
  }
  const missing: string[] = [];
  for (const key of SETTING_NAMES) {
    const row = rows.get(key);
    if (!row) missing.push(`${key}: no row`);
    else if (!row.includes(flagName(key)) || !row.includes(envName(key))) missing.push(`${key}: flag or variable not named`);
  }
  assert.deepEqual(missing, [], 'add a row to the table in docs/configuration.md (setting | flag | environment | default | what)');
});

test('docs/configuration.md gives each setting the default src/config.ts has', () => {
  const doc = readFileSync(`${ROOT}docs/configuration.md`, 'utf8');
  const wrong: string[] = [];
  for (const key of SETTING_NAMES) {
    const row = doc.split('\n').find((l) => l.startsWith(`| ${key} |`));
    const cell = row?.split(' | ')[3] ?? '';
    const info = settingInfo(key);
    // A default given in words (the secret: none) is checked by its words' first part.
    const value = info.defaultText !== undefined ? info.defaultText.split(' ')[0] ?? '' : typeof info.default === 'string' ? info.default || '""' : JSON.stringify(info.default);
    if (!cell.includes(`\`${value}\``) && !cell.startsWith(value)) wrong.push(`${key}: docs say ${cell}, the code ${value}`);
  }
  assert.deepEqual(wrong, []);
});
