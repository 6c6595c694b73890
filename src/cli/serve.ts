/** `herald serve`: start a node; SIGTERM/SIGINT drain it and exit 0. */
import { resolveConfig } from '../config.js';
import { createHeraldServer } from '../server.js';
import { configSources, parseCommand, settingOptions } from './args.js';
import { installProcessGuard } from './process-guard.js';

export async function serve(argv: string[], env: Record<string, string | undefined>): Promise<number> {
  const parsed = parseCommand(argv, settingOptions());
  const config = resolveConfig(configSources(parsed, env));
  const server = createHeraldServer(config);
  // Anything that escapes every connection boundary is logged and counted, and the node keeps serving.
  installProcessGuard(server.log);
  const address = await server.listen();
  server.log.info('herald listening', {
    address: `${address.address}:${address.port}`,
    broker: server.node.broker.kind,
    dev: config.dev,
  });
  if (config.dev) printDevHelp(server.url);

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

function printDevHelp(url: string): void {
  const port = new URL(url).port;
  const base = port === '8080' ? 'http://localhost:8080' : url;
  process.stdout.write(
    [
      '',
      `Herald is running in development mode at ${base} (embedded broker, anonymous access from this machine).`,
      '',
      'Subscribe (in one terminal):',
      `  curl -N '${base}/sub?channel=abc'`,
      '',
      'Publish (in another):',
      `  npx herald publish abc 123${port === '8080' ? '' : ` --server ${base}`}`,
      `  curl -X POST ${base}/api/publish -H 'Content-Type: application/json' -d '{"channel":"abc","data":"123"}'`,
      '',
    ].join('\n') + '\n',
  );
}
