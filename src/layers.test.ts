/**
 * The layering (docs/architecture.md "Seams"): no module imports a layer above its own. Read from the sources, so a
 * new upward import fails here, in the unit layer, before anyone has to find the cycle.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

/** This file runs from dist/src; the sources are two levels up. */
const SRC = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');

/** Per directory of src/, the directories (or top-level modules) it must never import. */
const FORBIDDEN: Record<string, readonly string[]> = {
  // The bottom: wire formats every layer speaks.
  protocol: ['util', 'broker', 'core', 'auth', 'http', 'transport', 'api', 'presence', 'pusher', 'cluster', 'webhooks', 'cli', 'config', 'server'],
  util: ['protocol', 'broker', 'core', 'auth', 'http', 'transport', 'api', 'presence', 'pusher', 'cluster', 'webhooks', 'cli', 'server'],
  // Brokers carry publications between nodes: they know no session, no hub, no client.
  broker: ['core', 'auth', 'http', 'transport', 'api', 'presence', 'pusher', 'cluster', 'webhooks', 'cli', 'server'],
  // The core owns sessions and fan-out; sockets, HTTP and credentials are above it.
  core: ['auth', 'http', 'transport', 'api', 'presence', 'pusher', 'cluster', 'webhooks', 'cli', 'server'],
  auth: ['transport', 'api', 'presence', 'pusher', 'cluster', 'webhooks', 'cli', 'server'],
  transport: ['api', 'pusher', 'cluster', 'webhooks', 'cli', 'server'],
  presence: ['transport', 'api', 'pusher', 'cluster', 'cli', 'server'],
  webhooks: ['transport', 'api', 'pusher', 'cluster', 'cli', 'server'],
};

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sources(p);
    return name.endsWith('.ts') && !name.endsWith('.test.ts') ? [p] : [];
  });
}

/** The first path segment under src/ that a relative import of `file` names ('config' for ../config.js). */
function importedLayers(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^(?:import|export)[^;]*?from '(\.[^']+)'/gms)) {
    const target = relative(SRC, join(dirname(file), m[1]!));
    out.push(target.split(/[\\/]/)[0]!.replace(/\.js$/, ''));
  }
  return out;
}

test('no module imports a layer above its own', () => {
  const problems: string[] = [];
  for (const file of sources(SRC)) {
    const layer = relative(SRC, file).split(/[\\/]/)[0]!;
    const forbidden = FORBIDDEN[layer];
    if (!forbidden) continue;
    for (const target of importedLayers(file)) {
      if (forbidden.includes(target)) problems.push(`${relative(SRC, file)} imports ${target}/`);
    }
  }
  assert.deepEqual(problems, []);
});

test('the check sees imports (it would catch one)', () => {
  assert.ok(importedLayers(join(SRC, 'core', 'session.ts')).includes('protocol'));
  assert.ok(importedLayers(join(SRC, 'transport', 'stream.ts')).includes('core'));
});
