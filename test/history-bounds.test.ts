/**
 * History memory is bounded (issue 15 findings 3 and 4, SECURITY-TESTS row 23), measured on `herald serve` run as a
 * child process (its RSS alone), each beside a control subscriber that must keep receiving in order:
 * - 300,000 resume subscribes (/ws `subscribe` with `since`, then `unsubscribe`) to distinct channels nobody ever
 *   published to create no history state (read stamps), and RSS stays flat;
 * - publishes to 300,000 distinct channels keep the memory broker's history within `historyMaxBytes`: the least
 *   recently published channels are evicted (counted), and their clients get an explicit reload on resume.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import WebSocket from 'ws';
import { isReadStamp, parseMessageId } from '../src/protocol/message-id.js';
import { cleanEnv, killAll, startHerald, type RunningHerald } from './helpers/cli.js';
import { openStream, publish, type LineStream } from './helpers/server.js';

after(killAll);

const MiB = 1024 * 1024;
const API_KEY = 'bounds-test-api-key-0123456789';

function rssBytes(h: RunningHerald): number {
  const status = readFileSync(`/proc/${h.proc.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

async function metric(h: RunningHerald, name: string): Promise<number> {
  const text = await (await fetch(`${h.url}/metrics`)).text();
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  assert.ok(m, `metric ${name} in /metrics`);
  return Number(m[1]);
}

/** A control subscriber on its own channel, and a publisher of numbered control messages. */
async function control(h: RunningHerald): Promise<{ tick(): Promise<void>; check(): Promise<void> }> {
  const stream: LineStream = await openStream(`${h.url}/sub?channel=control`);
  assert.equal(stream.status, 200);
  const sent: string[] = [];
  return {
    async tick() {
      const data = `control-${sent.length}`;
      const r = await publish(h.url, { channel: 'control', data }, API_KEY);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      sent.push(data);
    },
    async check() {
      // /sub heartbeats are empty lines (one may fall inside a 30 s test): wait for that many messages, not lines.
      let lines: string[] = [];
      for (let n = sent.length; ; n++) {
        lines = (await stream.waitLines(n, 10_000)).filter((l) => l !== '');
        if (lines.length >= sent.length) break;
      }
      assert.deepEqual(lines.map((l) => (JSON.parse(l) as string[])[2]), sent, 'the control subscriber got every message in order');
      stream.close();
    },
  };
}

/**
 * `total` subscribe-with-since then unsubscribe pairs on distinct channels `prefix.N`, over `sockets` WebSockets,
 * each keeping `window` requests in flight. Resolves with the subscribes answered; fails on any error frame.
 */
async function resumeSubscribes(url: string, prefix: string, total: number, sockets = 4, window = 32): Promise<number> {
  let next = 0;
  let done = 0;
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws`);
      let id = 0;
      let inFlight = 0;
      /** Request id → the channel of a subscribe; unsubscribes are not in it. */
      const pending = new Map<number, string>();
      const send = (): void => {
        while (inFlight < window && next < total) {
          const n = next++;
          const channel = `${prefix}.${n}`;
          // Half resume from "no position yet", half from an old position of an epoch long gone.
          const since = n % 2 === 0 ? '' : `${n % 97}-oldepoch${n % 7}`;
          pending.set(++id, channel);
          inFlight++;
          ws.send(JSON.stringify({ op: 'subscribe', id, channel, since }));
        }
        if (inFlight === 0 && next >= total) ws.close();
      };
      ws.on('open', send);
      ws.on('message', (raw) => {
        const f = JSON.parse(String(raw)) as { type: string; id?: number };
        if (f.type === 'error') return reject(new Error(`error frame ${String(raw)}`));
        if (f.type !== 'reply' || typeof f.id !== 'number') return;
        const channel = pending.get(f.id);
        pending.delete(f.id);
        if (channel !== undefined) {
          done++;
          ws.send(JSON.stringify({ op: 'unsubscribe', id: ++id, channel }));
          return;
        }
        inFlight--;
        send();
      });
      ws.on('close', () => resolve());
      ws.on('error', reject);
    });
  await Promise.all(Array.from({ length: sockets }, one));
  return done;
}

test('300,000 resume subscribes to distinct unknown channels: no history state, RSS flat, control unaffected', async () => {
  const h = await startHerald(['--port', '0', '--dev', '--log-level', 'warn', '--api-key', API_KEY], cleanEnv());
  const c = await control(h);
  await c.tick();
  // Warm up (JIT, buffers), then measure.
  assert.equal(await resumeSubscribes(h.url, 'warm', 20_000), 20_000);
  const before = rssBytes(h);
  const t0 = Date.now();
  const total = 300_000;
  const halfway = resumeSubscribes(h.url, 'unknown', total);
  await c.tick();
  assert.equal(await halfway, total);
  const seconds = (Date.now() - t0) / 1000;
  await c.tick();
  const grown = rssBytes(h) - before;
  const channels = await metric(h, 'herald_history_channels');
  const bytes = await metric(h, 'herald_history_bytes');
  console.log(
    `# ${total} resume subscribes in ${seconds.toFixed(1)} s (${Math.round(total / seconds)}/s); ` +
      `RSS ${(before / MiB).toFixed(1)} -> ${((before + grown) / MiB).toFixed(1)} MiB; history: ${channels} channel(s), ${bytes} bytes`,
  );
  assert.equal(channels, 1, 'only the control channel has history: reads created none');
  assert.ok(bytes < 64 * 1024, `history bytes ${bytes}`);
  // RSS also holds V8's not yet collected garbage of 300,000 requests (22-41 MiB seen): the bound sits well below
  // the 343 MiB that the same reads cost when each created a history log.
  assert.ok(grown < 96 * MiB, `RSS grew ${(grown / MiB).toFixed(1)} MiB over ${total} reads (bound 96 MiB)`);
  await c.check();
  assert.equal((await fetch(`${h.url}/healthz`)).status, 200);
  h.proc.kill('SIGKILL');
});

test('publishes to 300,000 distinct channels stay within historyMaxBytes; evictions counted; evicted channels reload', async () => {
  const maxBytes = 32 * MiB;
  const h = await startHerald(['--port', '0', '--dev', '--log-level', 'warn', '--api-key', API_KEY, '--history-max-bytes', String(maxBytes)], cleanEnv());
  const c = await control(h);
  await c.tick();
  const before = rssBytes(h);
  const total = 300_000;
  const perRequest = 100;
  const data = 'x'.repeat(40);
  const ids = new Map<string, string>();
  let peakBytes = 0;
  /** Publish one message to each of `pub.<round>.0` .. `pub.<round>.<total-1>`, 100 channels a request. */
  const round = async (name: string): Promise<void> => {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < total) {
        const first = next;
        next += perRequest;
        const channels = Array.from({ length: perRequest }, (_, i) => `pub.${name}.${first + i}`);
        const r = await publish(h.url, { channels, data }, API_KEY);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        const got = (r.body as { ids: string[] }).ids;
        if (first === 0 || first + perRequest >= total) got.forEach((id, i) => ids.set(channels[i]!, id));
        if (first % 30_000 === 0) {
          peakBytes = Math.max(peakBytes, await metric(h, 'herald_history_bytes'));
          await c.tick();
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
  };
  const t0 = Date.now();
  await round('a');
  const seconds = (Date.now() - t0) / 1000;
  const afterFirst = rssBytes(h);
  const bytes = await metric(h, 'herald_history_bytes');
  const channels = await metric(h, 'herald_history_channels');
  const evictions = await metric(h, 'herald_history_evictions_total');
  // Another 300,000 channels: a bounded history holds RSS where it was; an unbounded one would double it.
  await round('b');
  const afterSecond = rssBytes(h);
  const bytes2 = await metric(h, 'herald_history_bytes');
  const evictions2 = await metric(h, 'herald_history_evictions_total');
  console.log(
    `# ${total} channels published in ${seconds.toFixed(1)} s; history ${(bytes / MiB).toFixed(1)} MiB ` +
      `(peak sampled ${(peakBytes / MiB).toFixed(1)}, bound ${maxBytes / MiB}) in ${channels} channels, ${evictions} evicted; ` +
      `RSS ${(before / MiB).toFixed(1)} -> ${(afterFirst / MiB).toFixed(1)} MiB; after ${total} more channels ` +
      `RSS ${(afterSecond / MiB).toFixed(1)} MiB, history ${(bytes2 / MiB).toFixed(1)} MiB, ${evictions2} evicted`,
  );
  assert.ok(bytes <= maxBytes && bytes2 <= maxBytes && peakBytes <= maxBytes, `history ${bytes} bytes within ${maxBytes}`);
  assert.ok(evictions > 0 && channels + evictions >= total, `${evictions} evictions counted, ${channels} kept`);
  assert.ok(channels < total);
  assert.ok(evictions2 >= evictions + total, 'every channel of the second round evicted one');
  // The history bytes above are exact; RSS also carries V8's uncollected garbage of 3,000 requests (37-53 MiB seen).
  // An unbounded history would add the second round's 300,000 channels on top: over 100 MiB.
  assert.ok(afterSecond - afterFirst < 72 * MiB, `RSS grew ${((afterSecond - afterFirst) / MiB).toFixed(1)} MiB over ${total} more channels`);

  // The first channel was evicted long ago: resuming it is an explicit reload. The last one resumes without one.
  const oldest = ids.get('pub.a.0')!;
  const s = await openStream(`${h.url}/sub?channel=pub.a.0&since=${oldest}`);
  const [line] = (await s.waitLines(1)).map((l) => JSON.parse(l) as string[]);
  assert.equal(line?.[0], 'reload');
  assert.equal(line?.[2], 'epoch');
  assert.ok(isReadStamp(parseMessageId(line?.[3] ?? '')?.epoch ?? ''), 'the evicted channel has no history now');
  s.close();
  const last = `pub.b.${total - 1}`;
  const newest = ids.get(last)!;
  const epoch = parseMessageId(newest)!.epoch;
  const t = await openStream(`${h.url}/sub?channel=${last}&since=0-${epoch}`);
  assert.deepEqual(JSON.parse((await t.waitLines(1))[0]!), ['message', last, data, newest]);
  t.close();

  await c.tick();
  await c.check();
  h.proc.kill('SIGKILL');
});
