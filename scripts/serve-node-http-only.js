// For benchmarks only: a --dev node on 127.0.0.1:PORT whose every connection goes to node:http (no front reader,
// no publish fast path), to measure what Herald's own readers earn (docs/benchmarks.md). Not a setting:
//   node scripts/serve-node-http-only.js PORT &   then   herald bench ... --url http://127.0.0.1:PORT --server-pid $!
import { resolveConfig } from '../dist/src/config.js';
import { createHeraldServer } from '../dist/src/server.js';

const port = Number(process.argv[2] ?? 8090);
const config = resolveConfig({ overrides: { dev: true, port, host: '127.0.0.1', logLevel: 'warn' } });
const server = createHeraldServer(config, { nodeHttpOnly: true });
await server.listen();
console.log(`node:http only: ${server.url}`);
process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
