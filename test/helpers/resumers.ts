/**
 * One-channel clients on every transport (/sub?since=, /sse with Last-Event-ID, /ws subscribe with since, /poll),
 * written from docs/protocol.md, that record what they receive as the /sub line arrays (`["message", ch, data,
 * id]`, `["reload", ch, reason, id]`, `["position", ch, id]`), and the accounting every fault test applies: per
 * acknowledged message, exactly once or covered by an explicit reload.
 */
import assert from 'node:assert/strict';
import { parseMessageId } from '../../src/protocol/message-id.js';
import { openStream } from './server.js';
import { openWs } from './ws.js';

export type Line = [string, string, string, string?];

export interface Resumer {
  readonly transport: string;
  /** Everything received so far, in order. */
  lines(): Line[];
  /** The client's cursor: the id of its last message, reload or position. */
  position(): string;
  close(): void;
}

export const TRANSPORTS = ['sub', 'sse', 'ws', 'poll'] as const;
export type Transport = (typeof TRANSPORTS)[number];

/** Subscribe `channel` on `transport`, resuming from `since` ('' for "no position yet, but tell me ids"). */
export async function resume(transport: Transport, url: string, channel: string, since: string): Promise<Resumer> {
  const c = encodeURIComponent(channel);
  switch (transport) {
    case 'sub': {
      const s = await openStream(`${url}/sub?channel=${c}&since=${encodeURIComponent(since)}`);
      assert.equal(s.status, 200);
      return wrap(transport, () => s.lines.filter((l) => l !== '').map((l) => JSON.parse(l) as Line), () => s.close());
    }
    case 'sse': {
      const s = await openStream(`${url}/sse?channel=${c}`, since === '' ? {} : { 'Last-Event-ID': since });
      assert.equal(s.status, 200);
      const lines = (): Line[] => s.lines.filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)) as Line);
      return wrap(transport, lines, () => s.close());
    }
    case 'ws': {
      const ws = await openWs(`${url}/ws`);
      const reply = await ws.request('subscribe', { channel, since });
      assert.equal(reply.type, 'reply', JSON.stringify(reply));
      const lines = (): Line[] =>
        ws.frames.flatMap((f): Line[] => {
          const id = f.id === undefined ? '' : String(f.id);
          if (f.type === 'message') return [['message', f.channel ?? '', f.data ?? '', id]];
          if (f.type === 'reload') return [['reload', f.channel ?? '', f.reason ?? '', id]];
          if (f.type === 'position') return [['position', f.channel ?? '', id]];
          return [];
        });
      return wrap(transport, lines, () => ws.close());
    }
    case 'poll': {
      const got: Line[] = [];
      let cursor = since;
      let open = true;
      let inFlight: AbortController | undefined;
      const loop = async (): Promise<void> => {
        while (open) {
          inFlight = new AbortController();
          try {
            const r = await fetch(`${url}/poll?channel=${c}&since=${encodeURIComponent(cursor)}`, { signal: inFlight.signal });
            if (r.status !== 200) {
              await r.text();
              await new Promise((res) => setTimeout(res, 100));
              continue;
            }
            const body = (await r.json()) as { messages: Line[]; cursor: string };
            got.push(...body.messages);
            cursor = body.cursor;
          } catch {
            if (open) await new Promise((res) => setTimeout(res, 100));
          }
        }
      };
      void loop();
      const r = wrap(transport, () => got, () => {
        open = false;
        inFlight?.abort();
      });
      // A poll answer carries the cursor itself (no position line).
      return { ...r, position: () => cursor };
    }
  }
}

function wrap(transport: string, lines: () => Line[], close: () => void): Resumer {
  return {
    transport,
    lines,
    position() {
      const all = lines();
      for (let i = all.length - 1; i >= 0; i--) {
        const l = all[i]!;
        const id = l[0] === 'position' ? l[2] : l[3];
        if (id) return id;
      }
      return '';
    },
    close,
  };
}

export interface Acked {
  readonly data: string;
  readonly id: string;
}

/**
 * The accounting of a fault test for one subscriber: every acknowledged message after `from` (an id the client had
 * reached, '' for none) arrived exactly once, in order, or is covered by a reload: at or before the reload's
 * position in its epoch, or in an epoch that a later reload ended. Returns the counts.
 */
export function account(r: Resumer, acked: readonly Acked[], from = ''): { delivered: number; covered: number } {
  const lines = r.lines();
  const messages = lines.filter((l) => l[0] === 'message');
  const datas = messages.map((l) => l[2]);
  assert.equal(new Set(datas).size, datas.length, `${r.transport}: a message delivered twice: ${JSON.stringify(datas)}`);
  const order = acked.map((m) => m.data);
  const indices = datas.map((d) => order.indexOf(d)).filter((i) => i >= 0);
  assert.deepEqual(indices, [...indices].sort((x, y) => x - y), `${r.transport}: out of order`);
  // Epochs in the order they were first acknowledged: a reload into a later epoch covers every earlier one.
  const epochRank = new Map<string, number>();
  for (const m of acked) {
    const e = parseMessageId(m.id)!.epoch;
    if (!epochRank.has(e)) epochRank.set(e, epochRank.size);
  }
  // Each reload, with the rank of the epoch it moves the client to. A reload to a read stamp (no history then)
  // moves it to the next epoch it receives messages of (the last acknowledged epoch when none follows).
  const lastRank = epochRank.size - 1;
  const reloads = lines.flatMap((l, i): { epoch: string | undefined; offset: number; rank: number }[] => {
    if (l[0] !== 'reload') return [];
    const at = parseMessageId(l[3] ?? '');
    if (!at) return [];
    let rank = epochRank.get(at.epoch);
    if (rank === undefined) {
      const next = lines.slice(i + 1).find((n) => n[0] === 'message' && epochRank.has(parseMessageId(n[3] ?? '')?.epoch ?? ''));
      rank = next ? epochRank.get(parseMessageId(next[3]!)!.epoch)! : lastRank;
      return [{ epoch: undefined, offset: 0, rank }];
    }
    return [{ epoch: at.epoch, offset: at.offset, rank }];
  });
  const start = from === '' ? undefined : parseMessageId(from);
  let delivered = 0;
  let covered = 0;
  for (const m of acked) {
    const p = parseMessageId(m.id)!;
    if (start && p.epoch === start.epoch && p.offset <= start.offset) continue; // the client had it before
    if (datas.includes(m.data)) {
      delivered++;
      continue;
    }
    const rank = epochRank.get(p.epoch)!;
    const isCovered = reloads.some((r) => (r.epoch === p.epoch && p.offset <= r.offset) || r.rank > rank);
    assert.ok(isCovered, `${r.transport}: acknowledged ${m.data} (${m.id}) neither delivered nor covered by a reload; got ${JSON.stringify(lines)}`);
    covered++;
  }
  return { delivered, covered };
}
