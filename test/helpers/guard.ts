/**
 * The checks every bad-input test makes (SECURITY-TESTS.md): a control subscriber on the same node keeps receiving
 * its messages in order, the process still answers, and session and subscription counts return to where they were.
 */
import assert from 'node:assert/strict';
import { eventually, openStream, publish, type LineStream, type TestServer } from './server.js';

export interface Guard {
  /** Publish the next control message (also done before and after the attack). */
  tick(): Promise<void>;
}

let nextControl = 0;

/**
 * Run `attack` with a control subscriber attached. `controlUrl` subscribes the control channel (its query must grant
 * `channel`); `apiKey` publishes to it.
 */
export async function guarded(
  node: TestServer,
  control: { url: string; channel: string; apiKey?: string },
  attack: (guard: Guard) => Promise<void>,
): Promise<void> {
  // Streams of earlier tests are closed but the node may not have seen it yet: start from an empty node.
  await eventually(() => node.server.node.sessionCount() === 0, 5000, 'earlier streams to close');
  const stream: LineStream = await openStream(control.url);
  assert.equal(stream.status, 200, `control subscriber refused: ${stream.lines.join('')}`);
  const sessions = node.server.node.sessionCount();
  const subscriptions = node.server.node.hub.subscriptionCount();
  const sent: string[] = [];
  const tick = async (): Promise<void> => {
    const data = `control-${nextControl++}`;
    const res = await publish(node.url, { channel: control.channel, data }, control.apiKey);
    assert.equal(res.status, 200, `control publish failed: ${JSON.stringify(res.body)}`);
    sent.push(data);
  };
  try {
    await tick();
    await attack({ tick });
    await tick();
    // Heartbeats are empty lines: an attack longer than the heartbeat interval must not count them as messages.
    const messages = (): string[] => stream.lines.filter((l) => l !== '');
    await eventually(() => messages().length >= sent.length, 5000, `control messages (${messages().length}/${sent.length})`);
    const got = messages()
      .slice(0, sent.length)
      .map((l) => (JSON.parse(l) as string[])[2]);
    assert.deepEqual(got, sent, 'control subscriber received every message in order');
    await eventually(
      () => node.server.node.sessionCount() === sessions && node.server.node.hub.subscriptionCount() === subscriptions,
      5000,
      `counts back to baseline (sessions ${node.server.node.sessionCount()}/${sessions}, ` +
        `subscriptions ${node.server.node.hub.subscriptionCount()}/${subscriptions})`,
    );
    const health = await fetch(`${node.url}/healthz`);
    assert.equal(health.status, 200, 'the node still answers');
  } finally {
    stream.close();
  }
}

/** GET a URL expecting a refusal: its status, parsed JSON body and headers. Streams (200) are closed at once. */
export async function answer(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: { error?: { code: string; message: string } }; headers: Record<string, unknown> }> {
  const s = await openStream(url, headers);
  if (s.status === 200) {
    s.close();
    return { status: 200, body: {}, headers: s.headers };
  }
  await s.ended;
  const text = s.lines.join('\n');
  let body: { error?: { code: string; message: string } } = {};
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    /* not JSON */
  }
  return { status: s.status, body, headers: s.headers };
}
