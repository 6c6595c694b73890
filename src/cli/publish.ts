/**
 * `herald publish CHANNEL DATA [--server URL] [--api-key KEY] [--json | --raw] [--idempotency-key K] [--retry N]`:
 * publish through a node's HTTP API. `--raw` sends DATA as the request body (`POST /api/publish?channel=C`,
 * `text/plain`), published verbatim as any raw publish is. `--retry N` tries again up to N times on 503, 504 and network errors, always under the
 * same idempotency key (a random one when none is given), so a retry never publishes the message twice
 * (docs/protocol.md "Retrying a publish").
 * `herald publish CHANNEL DATA --broker redis://HOST:PORT`: publish straight to Redis (or Redis Cluster), as any
 * backend can; every node subscribed to the channel delivers it. It publishes through an in-process node
 * (HeraldNode.publish), so the channel keeps the history its policy says (HERALD_HISTORY_* and namespaces, from the
 * environment or the config file), gets an id, and resuming clients can recover it.
 */
import { randomUUID } from 'node:crypto';
import { checkBrokerUrl, ConfigError, resolveConfig } from '../config.js';
import { createNodeMetrics, MetricsRegistry } from '../core/metrics.js';
import { HeraldNode } from '../core/node.js';
import { HeraldError } from '../errors.js';
import { idempotencyKey } from '../protocol/idempotency.js';
import { createLogger } from '../util/log.js';
import { brokerAddress } from '../util/redact.js';
import { parseCommand, type CommandSpec } from './command.js';

const USAGE =
  'usage: herald publish CHANNEL DATA [--server URL] [--api-key KEY] [--broker URL] [--json | --raw] [--idempotency-key K] [--retry N]';
/** Waits between tries: full jitter up to min(cap, base * 2^attempt) (as the SDK's reconnect). */
const RETRY_BASE_MS = 200;
const RETRY_CAP_MS = 5000;

export const PUBLISH: CommandSpec = {
  name: 'publish',
  args: 'CHANNEL DATA',
  summary: "Publish DATA to CHANNEL through a node's HTTP API, or straight to Redis with --broker.",
  flags: {
    server: { type: 'string', value: 'URL', help: 'the node to publish through ($HERALD_SERVER)', default: 'http://localhost:8080' },
    'api-key': { type: 'string', value: 'KEY', help: 'publish API key ($HERALD_API_KEY; not needed against --dev)' },
    broker: { type: 'string', value: 'URL', help: 'publish straight to redis://... or redis-cluster://... instead of a node' },
    json: { type: 'boolean', help: 'DATA is JSON (an object, a number...), not a string' },
    raw: { type: 'boolean', help: 'send DATA as the request body (POST /api/publish?channel=C), published verbatim' },
    'idempotency-key': { type: 'string', value: 'K', help: 'name the message: a rerun within the idempotency window publishes nothing' },
    retry: { type: 'string', value: 'N', help: 'retry up to N times on 503, 504 and network errors, under one idempotency key', default: '0' },
  },
  notes: ['examples:', '  herald publish abc 123', '  herald publish orders \'{"id":7}\' --json --server https://push.example.com --api-key K --retry 3'],
};

export async function publishCommand(argv: string[], env: Record<string, string | undefined>): Promise<number> {
  const parsed = parseCommand(argv, PUBLISH);
  const [channel, data, ...rest] = parsed.positionals;
  if (channel === undefined || data === undefined || rest.length > 0) throw new ConfigError('arguments', USAGE);
  // --json sends DATA as JSON (an object, a number...); otherwise it is published as the string given.
  let payload: unknown = data;
  const raw = parsed.values['raw'] === true;
  if (raw && parsed.values['json'] === true) throw new ConfigError('--raw', 'give --json or --raw, not both');
  if (parsed.values['json'] === true) {
    try {
      payload = JSON.parse(data);
    } catch {
      throw new ConfigError('DATA', 'not valid JSON (with --json)');
    }
  }
  const retryText = parsed.values['retry'] as string | undefined;
  if (retryText !== undefined && !/^\d{1,3}$/.test(retryText)) throw new ConfigError('--retry', 'must be a whole number of retries, 0-999');
  const retries = Number(retryText ?? '0');
  let key: string | undefined;
  try {
    key = idempotencyKey(parsed.values['idempotency-key'], '--idempotency-key');
  } catch (err) {
    throw new ConfigError('--idempotency-key', (err as Error).message);
  }
  // Retrying without a key could publish twice: every try of this command shares one.
  if (retries > 0) key ??= randomUUID();
  const broker = parsed.values['broker'] as string | undefined;
  if (broker !== undefined) {
    if (parsed.values['server'] !== undefined) throw new ConfigError('--broker', 'give --server or --broker, not both');
    const json = typeof payload !== 'string';
    return publishToBroker(broker, channel, json ? JSON.stringify(payload) : (payload as string), json, env, key);
  }
  const server = (parsed.values['server'] as string | undefined) ?? env['HERALD_SERVER'] ?? 'http://localhost:8080';
  const apiKey = (parsed.values['api-key'] as string | undefined) ?? env['HERALD_API_KEY'];
  let url: URL;
  try {
    url = new URL('/api/publish', server);
  } catch {
    throw new ConfigError('--server', `"${server}" is not a URL`);
  }
  // --raw: the body is the data itself, the channel in the query (the raw form of the publish API).
  if (raw) url.searchParams.set('channel', channel);
  const headers: Record<string, string> = { 'Content-Type': raw ? 'text/plain; charset=utf-8' : 'application/json' };
  if (apiKey) headers['Authorization'] = `Bearer ${apiKey}`;
  if (key !== undefined) headers['Idempotency-Key'] = key;
  const body = raw ? data : JSON.stringify({ channel, data: payload });
  for (let attempt = 0; ; attempt++) {
    let problem: string;
    try {
      const res = await fetch(url, { method: 'POST', headers, body });
      const text = await res.text();
      if (res.ok) {
        process.stdout.write(text + '\n');
        return 0;
      }
      problem = `${res.status} ${text}`;
      // 503: not published; 504: maybe published. Both are safe to retry under the same key; nothing else is.
      if (res.status !== 503 && res.status !== 504) attempt = retries;
    } catch (err) {
      problem = `cannot reach ${url.origin}: ${String((err as Error).cause ?? (err as Error).message)}`;
    }
    if (attempt >= retries) {
      process.stderr.write(`herald publish: ${problem}\n`);
      return 1;
    }
    process.stderr.write(`herald publish: ${problem}; retrying (${attempt + 1}/${retries}) with Idempotency-Key ${key}\n`);
    await new Promise((r) => setTimeout(r, Math.random() * Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** attempt)));
  }
}

async function publishToBroker(
  url: string,
  channel: string,
  data: string,
  json: boolean,
  env: Record<string, string | undefined>,
  key: string | undefined,
): Promise<number> {
  const problem = url === 'memory' ? 'the memory broker lives inside one node: use --server' : checkBrokerUrl(url);
  if (problem) throw new ConfigError('--broker', problem);
  // The node settings this command uses (Redis timeouts, history); dev only spares it the serve-time secret check.
  const config = resolveConfig({ env, overrides: { broker: url, dev: true } });
  // The broker logs why a first connection failed; this command has no log, so it keeps that line for its error.
  let cause: string | undefined;
  const log = createLogger('warn', (line) => {
    const fields = JSON.parse(line) as { cause?: unknown };
    if (typeof fields.cause === 'string') cause ??= fields.cause;
  });
  // Loaded on use: `herald serve --workers`'s primary loads this module (the CLI's table) and must stay small.
  const { createBroker } = await import('../server.js');
  const broker = createBroker(config, log);
  // A node of its own, subscribed to no client channel: its publish is the one every publisher goes through.
  const node = new HeraldNode(broker, config, log, createNodeMetrics(new MetricsRegistry()));
  try {
    await node.start();
    // On Redis Cluster only the channel's shard matters: another shard being down does not stop this publish.
    if (!(broker.isReadyFor?.(channel) ?? broker.isReady())) {
      process.stderr.write(`herald publish: cannot reach ${brokerAddress(url)}${cause ? `: ${cause}` : ''}\n`);
      return 1;
    }
    const result = await node.publish(channel, data, { source: 'cli', ...(key !== undefined ? { idempotencyKey: key } : {}), ...(json ? { json } : {}) });
    process.stdout.write(JSON.stringify({ id: result.id ?? null, ...(result.replayed ? { replayed: true } : {}) }) + '\n');
    return 0;
  } catch (err) {
    const code = err instanceof HeraldError ? ` (${err.code})` : '';
    process.stderr.write(`herald publish: ${(err as Error).message}${code}\n`);
    return 1;
  } finally {
    await node.stop();
  }
}
