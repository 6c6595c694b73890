/** `herald serve`: start a node; SIGTERM/SIGINT drain it and exit 0. */
import cluster from 'node:cluster';
import { joinMachine, type MachineSeat } from '../cluster/worker.js';
import { runPrimary } from '../cluster/primary.js';
import { resolveConfig, type HeraldConfig } from '../config.js';
import type { HeraldServer } from '../server.js';
import { createLogger } from '../util/log.js';
import { brokerAddress } from '../util/redact.js';
import { CommandFailure, commandWarnings, configSources, parseCommand, type CommandSpec } from './command.js';
import { installProcessGuard } from './process-guard.js';

export const SERVE: CommandSpec = {
  name: 'serve',
  summary: 'Start a node. Settings come from flags, then HERALD_* variables, then --config FILE, then the defaults.',
  flags: {},
  settings: 'list',
  notes: [
    'examples:',
    '  herald serve --dev                                  development: 127.0.0.1:8080, anonymous, embedded broker',
    '  HERALD_SECRET=... herald serve --broker redis://redis:6379 --api-key K',
    '  herald serve --config herald.json                   (herald config init writes a starter file)',
    '  herald serve --workers 6 ...                        six processes, one Herald (default: one per CPU; 1 with --dev)',
    'Every setting is explained in docs/configuration.md.',
  ],
};

export async function serve(argv: string[], env: Record<string, string | undefined>): Promise<number> {
  const parsed = parseCommand(argv, SERVE);
  const sources = configSources(parsed, env);
  let config = resolveConfig(sources);
  if (config.workers > 1 && cluster.isPrimary) return servePrimary(config, commandWarnings(parsed, env, SERVE));
  // A worker: one node of the machine, on the primary's broker (embedded) or its own Redis connections, with its
  // share of maxConnections.
  let seat: MachineSeat | undefined;
  if (cluster.isWorker) {
    const share = config.maxConnections === 0 ? 0 : Math.ceil(config.maxConnections / config.workers);
    config = resolveConfig({ ...sources, overrides: { ...sources.overrides, maxConnections: share } });
    seat = await joinMachine(config);
  }
  // Loaded here, not at the top: the primary of --workers never serves a client, and the server's modules (the Redis
  // client, ws, jose) cost ~35 MB of RSS in every process that loads them (docs/benchmarks.md "Workers").
  const { createHeraldServer } = await import('../server.js');
  const server = createHeraldServer(config, seat?.serverOptions);
  // Anything that escapes every connection boundary is logged and counted, and the node keeps serving.
  installProcessGuard(server.log);
  if (seat) return serveWorker(server, config, seat);
  for (const warning of commandWarnings(parsed, env, SERVE)) server.log.warn(warning);
  const address = await listen(server, config);
  server.log.info('herald listening', {
    address: `${address.address}:${address.port}`,
    broker: server.node.broker.kind,
    brokerAddress: config.broker === 'memory' ? undefined : brokerAddress(config.broker),
    dev: config.dev,
    internal: server.internalUrl,
  });
  if (config.dev) printDevHelp(server.url, config.broker, server.internalUrl);

  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      server.log.info('draining', { signal });
      server.close().then(resolve, (err: unknown) => {
        server.log.error('shutdown failed', { err: String(err) });
        resolve();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  return 0;
}

/** The primary of `--workers N`: forks the workers, hosts the embedded broker, and drains them all on SIGTERM. */
async function servePrimary(config: HeraldConfig, warnings: readonly string[]): Promise<number> {
  const log = createLogger(config.logLevel, undefined, config.logFormat);
  // The primary holds every worker's link: a bug that escapes here is logged and counted, and the machine keeps serving.
  installProcessGuard(log);
  for (const warning of warnings) log.warn(warning);
  return runPrimary({
    config,
    workers: config.workers,
    log,
    onListening: (address) => {
      log.info('herald listening', {
        address: `${address.address}:${address.port}`,
        broker: config.broker === 'memory' ? 'memory' : undefined,
        brokerAddress: config.broker === 'memory' ? undefined : brokerAddress(config.broker),
        workers: config.workers,
        dev: config.dev,
        pid: process.pid,
      });
      const host = address.address.includes(':') ? `[${address.address}]` : address.address === '0.0.0.0' ? '127.0.0.1' : address.address;
      const internal = config.internalPort === 0 ? undefined : `http://${config.internalHost.includes(':') ? `[${config.internalHost}]` : config.internalHost}:${config.internalPort}`;
      if (config.dev) printDevHelp(`http://${host}:${address.port}`, config.broker, internal);
    },
  });
}

/** One worker: listen on the shared port, report to the primary, drain on SIGTERM and exit. */
async function serveWorker(server: HeraldServer, config: HeraldConfig, seat: MachineSeat): Promise<number> {
  seat.attach(server);
  await listen(server, config);
  seat.listening();
  server.log.debug('worker listening', { worker: seat.workerId, pid: process.pid });
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      seat.draining();
      server.close().then(resolve, () => resolve());
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  seat.close();
  // node:cluster's channel to the primary would keep the process alive.
  process.exit(0);
}

/** Why a port cannot be listened on, in words; what the code alone does not say. */
const LISTEN_FAILURES: Readonly<Record<string, string>> = {
  EADDRINUSE: 'address already in use (another process listens there: stop it or pick another --port)',
  EACCES: 'permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE: pick another --port)',
  EADDRNOTAVAIL: 'no such address on this machine (check --host)',
  ENOTFOUND: 'host name not found (check --host)',
  EAI_AGAIN: 'host name not resolved now (check --host and DNS)',
};

/** Listen, or fail with one line naming the address and why (the broker started by listen() is stopped first). */
async function listen(server: HeraldServer, config: HeraldConfig): Promise<{ address: string; port: number }> {
  try {
    return await server.listen();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const why = LISTEN_FAILURES[code];
    if (why === undefined) throw err;
    await server.close();
    const host = config.host.includes(':') ? `[${config.host}]` : config.host;
    throw new CommandFailure(`cannot listen on ${host}:${config.port}: ${why} (${code})`);
  }
}

function printDevHelp(url: string, broker: string, internalUrl: string | undefined): void {
  const port = new URL(url).port;
  const base = port === '8080' ? 'http://localhost:8080' : url;
  // The dashboard is always on in --dev; with an internal port it lives there (operators' routes), not on the public one.
  const admin = `${internalUrl ?? base}/admin`;
  // Say which broker is in use: a dev node on Redis shares its channels with every node on that Redis.
  const brokerText = broker === 'memory' ? 'embedded broker' : `broker ${brokerAddress(broker)}`;
  process.stdout.write(
    [
      '',
      `Herald is running in development mode at ${base} (${brokerText}, anonymous access from this machine).`,
      '',
      'Subscribe (in one terminal):',
      `  curl -N '${base}/sub?channel=abc'`,
      '',
      'Publish (in another):',
      `  npx herald publish abc 123${port === '8080' ? '' : ` --server ${base}`}`,
      `  curl -X POST ${base}/api/publish -H 'Content-Type: application/json' -d '{"channel":"abc","data":"123"}'`,
      '',
      `Admin dashboard: ${admin}`,
      '',
    ].join('\n') + '\n',
  );
}
