/**
 * `herald publish CHANNEL DATA [--server URL] [--api-key KEY] [--json]`: publish through a node's HTTP API.
 * `herald publish CHANNEL DATA --broker redis://HOST:PORT`: publish straight to Redis (or Redis Cluster), as any
 * backend can; every node subscribed to the channel delivers it. It keeps the message in the channel's history with
 * the node-wide history settings (HERALD_HISTORY_* or the config file; namespaces' own policies are not applied), so
 * it gets an id and resuming clients can recover it.
 */
import { checkBrokerUrl, ConfigError, resolveConfig } from '../config.js';
import { historyPolicyFor } from '../core/history-policy.js';
import { createBroker } from '../server.js';
import { createLogger } from '../util/log.js';
import { parseCommand } from './args.js';

const USAGE = 'usage: herald publish CHANNEL DATA [--server URL] [--api-key KEY] [--broker URL] [--json]';

export async function publishCommand(argv: string[], env: Record<string, string | undefined>): Promise<number> {
  const parsed = parseCommand(argv, {
    server: { type: 'string' },
    'api-key': { type: 'string' },
    broker: { type: 'string' },
    json: { type: 'boolean' },
  });
  const [channel, data, ...rest] = parsed.positionals;
  if (channel === undefined || data === undefined || rest.length > 0) throw new ConfigError('arguments', USAGE);
  // --json sends DATA as JSON (an object, a number...); otherwise it is published as the string given.
  let payload: unknown = data;
  if (parsed.values['json'] === true) {
    try {
      payload = JSON.parse(data);
    } catch {
      throw new ConfigError('DATA', 'not valid JSON (with --json)');
    }
  }
  const broker = parsed.values['broker'] as string | undefined;
  if (broker !== undefined) {
    if (parsed.values['server'] !== undefined) throw new ConfigError('--broker', 'give --server or --broker, not both');
    return publishToBroker(broker, channel, typeof payload === 'string' ? payload : JSON.stringify(payload), env);
  }
  const server = (parsed.values['server'] as string | undefined) ?? env['HERALD_SERVER'] ?? 'http://localhost:8080';
  const apiKey = (parsed.values['api-key'] as string | undefined) ?? env['HERALD_API_KEY'];
  let url: URL;
  try {
    url = new URL('/api/publish', server);
  } catch {
    throw new ConfigError('--server', `"${server}" is not a URL`);
  }
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (apiKey) headers['Authorization'] = `Bearer ${apiKey}`;
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', headers, body: JSON.stringify({ channel, data: payload }) });
  } catch (err) {
    process.stderr.write(`herald publish: cannot reach ${url.origin}: ${(err as Error).cause ?? (err as Error).message}\n`);
    return 1;
  }
  const text = await res.text();
  if (!res.ok) {
    process.stderr.write(`herald publish: ${res.status} ${text}\n`);
    return 1;
  }
  process.stdout.write(text + '\n');
  return 0;
}

async function publishToBroker(
  url: string,
  channel: string,
  data: string,
  env: Record<string, string | undefined>,
): Promise<number> {
  const problem = url === 'memory' ? 'the memory broker lives inside one node: use --server' : checkBrokerUrl(url);
  if (problem) throw new ConfigError('--broker', problem);
  // The node settings this command uses (Redis timeouts, history); dev only spares it the serve-time secret check.
  const config = resolveConfig({ env, overrides: { broker: url, dev: true } });
  const broker = createBroker(config, createLogger('silent'));
  try {
    await broker.start({ onPublication: () => undefined });
    if (!broker.isReady()) {
      process.stderr.write(`herald publish: cannot reach ${url}\n`);
      return 1;
    }
    const history = historyPolicyFor(config)(channel);
    const result = await broker.publish(channel, data, history ? { history } : undefined);
    process.stdout.write(JSON.stringify({ id: result.id ?? null }) + '\n');
    return 0;
  } catch (err) {
    process.stderr.write(`herald publish: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await broker.close();
  }
}
