/** `herald publish CHANNEL DATA [--server URL] [--api-key KEY]`: publish through a node's HTTP API. */
import { ConfigError } from '../config.js';
import { parseCommand } from './args.js';

export async function publishCommand(argv: string[], env: Record<string, string | undefined>): Promise<number> {
  const parsed = parseCommand(argv, {
    server: { type: 'string' },
    'api-key': { type: 'string' },
    json: { type: 'boolean' },
  });
  const [channel, data, ...rest] = parsed.positionals;
  if (channel === undefined || data === undefined || rest.length > 0) {
    throw new ConfigError('arguments', 'usage: herald publish CHANNEL DATA [--server URL] [--api-key KEY]');
  }
  const server = (parsed.values['server'] as string | undefined) ?? env['HERALD_SERVER'] ?? 'http://localhost:8080';
  const apiKey = (parsed.values['api-key'] as string | undefined) ?? env['HERALD_API_KEY'];
  let url: URL;
  try {
    url = new URL('/api/publish', server);
  } catch {
    throw new ConfigError('--server', `"${server}" is not a URL`);
  }
  // --json sends DATA as JSON (an object, a number...); otherwise it is published as the string given.
  let payload: unknown = data;
  if (parsed.values['json'] === true) {
    try {
      payload = JSON.parse(data);
    } catch {
      throw new ConfigError('DATA', 'not valid JSON (with --json)');
    }
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
