/**
 * The auth hook (issue 10 §3) against a real backend (node:http) started here: allow, deny, slow (timeout), down,
 * failing, hostile answers (malformed, oversized, trickled), cached, coalesced (200 clients with one cookie cost one
 * call), on /sub, /sse, /ws and /poll, with the failure policy both ways and the figures in /metrics.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { EventSource } from 'eventsource';
import { resolveConfig } from '../src/config.js';
import { answerJson, startHookServer, type HookRequest, type HookServer } from './helpers/hook-server.js';
import { parseSamples } from './helpers/metrics.js';
import { eventually, openStream, publish, startServer, type TestServer } from './helpers/server.js';
import { openWs } from './helpers/ws.js';

interface Asked {
  event: string;
  transport: string;
  channels: string[];
  cookies: Record<string, string>;
  headers: Record<string, string>;
  remoteAddress: string;
}
const asked = (r: HookRequest): Asked => JSON.parse(r.body) as Asked;

/** The test's backend: sid=alice may read `room.*` and her own channel; sid=bob nothing; see `respond` per test. */
function backend(req: HookRequest, res: import('node:http').ServerResponse): void {
  const a = asked(req);
  if (a.cookies['sid'] === 'alice') {
    answerJson(res, 200, { allow: true, user: 'alice', channels: ['room.*', 'room:*', 'user.alice'], info: { name: 'Alice' } });
  } else if (a.cookies['sid'] === 'dave') {
    answerJson(res, 200, { allow: true, user: 'dave', channels: ['room:*'], info: { bio: 'x'.repeat(2000) } });
  } else if (a.cookies['sid'] === 'carol') {
    answerJson(res, 200, { allow: true, user: 'carol' }); // the channels asked, no more
  } else if (a.headers['x-api-user'] === 'svc') {
    answerJson(res, 200, { allow: true, user: 'svc', channels: ['svc.feed'] });
  } else {
    answerJson(res, 403, { reason: 'no session\u0000 here' });
  }
}

let hook: HookServer;
let node: TestServer;
before(async () => {
  hook = await startHookServer(backend);
  node = await startServer({
    dev: false,
    authHook: hook.url,
    authHookCookies: ['sid'],
    authHookHeaders: ['X-Api-User'],
    authHookTimeoutMs: 1000,
    authHookCacheSeconds: 30,
    metricsPublic: true,
    defaultNamespace: {},
    namespaces: { pub: { anonymous: true } },
  });
});
after(async () => {
  await node.close();
  await hook.close();
});

const metric = async (n: TestServer, name: string, labels: Record<string, string> = {}): Promise<number> =>
  parseSamples(await (await fetch(`${n.url}/metrics`, { headers: { Authorization: 'Bearer x' } })).text())
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);

test('allow: /sub with the cookie subscribes what the hook grants; the hook was told transport, channels, cookie, address', async () => {
  hook.requests.length = 0;
  const s = await openStream(`${node.url}/sub?channel=room.1`, { Cookie: 'theme=dark; sid=alice' });
  assert.equal(s.status, 200);
  await publish(node.url, { channel: 'room.1', data: 'hi' });
  assert.deepEqual(await s.waitLines(1), ['["message","room.1","hi"]']);
  s.close();
  assert.equal(hook.requests.length, 1);
  const a = asked(hook.requests[0]!);
  assert.equal(a.event, 'connect');
  assert.equal(a.transport, 'sub');
  assert.deepEqual(a.channels, ['room.1']);
  assert.deepEqual(a.cookies, { sid: 'alice' }, 'only the configured cookies are forwarded');
  assert.deepEqual(a.headers, {});
  assert.equal(a.remoteAddress, '127.0.0.1');
  assert.equal(hook.requests[0]!.headers['content-type'], 'application/json');
});

test('no channel named: the exact channels of the answer; a channel outside the answer is 403', async () => {
  const s = await openStream(`${node.url}/sub`, { Cookie: 'sid=alice' });
  assert.equal(s.status, 200);
  await publish(node.url, { channel: 'user.alice', data: 'own' });
  assert.deepEqual(await s.waitLines(1), ['["message","user.alice","own"]']);
  s.close();
  const refused = await fetch(`${node.url}/sub?channel=user.bob`, { headers: { Cookie: 'sid=alice' } });
  assert.equal(refused.status, 403);
  assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'forbidden');
});

test('deny: 403 with the backend reason (control characters removed); no cookie at all is asked too, and denied', async () => {
  const r = await fetch(`${node.url}/sub?channel=room.1`, { headers: { Cookie: 'sid=bob' } });
  assert.equal(r.status, 403);
  const body = (await r.json()) as { error: { code: string; message: string } };
  assert.equal(body.error.code, 'forbidden');
  assert.equal(body.error.message, 'denied by the auth hook: no session  here');
  const none = await fetch(`${node.url}/sub?channel=room.2`);
  assert.equal(none.status, 403);
  // Anonymous namespaces need no hook.
  const before = hook.requests.length;
  const pub = await openStream(`${node.url}/sub?channel=pub:x`);
  assert.equal(pub.status, 200);
  pub.close();
  assert.equal(hook.requests.length, before);
});

test('"channels" omitted: exactly the channels asked; a forwarded header is part of the credential', async () => {
  const s = await openStream(`${node.url}/sub?channel=anything.carol`, { Cookie: 'sid=carol' });
  assert.equal(s.status, 200);
  s.close();
  const svc = await openStream(`${node.url}/sub?channel=svc.feed`, { 'X-Api-User': 'svc' });
  assert.equal(svc.status, 200);
  svc.close();
  const last = asked(hook.requests[hook.requests.length - 1]!);
  assert.deepEqual(last.headers, { 'x-api-user': 'svc' });
});

test('cached per credential and channels: a second identical subscribe asks nothing; another cookie asks again', async () => {
  const first = await openStream(`${node.url}/sub?channel=room.cache`, { Cookie: 'sid=alice' });
  first.close();
  const calls = hook.requests.length;
  const hits = await metric(node, 'herald_auth_hook_cache_hits_total');
  for (let i = 0; i < 5; i++) {
    const s = await openStream(`${node.url}/sub?channel=room.cache`, { Cookie: 'sid=alice' });
    assert.equal(s.status, 200);
    s.close();
  }
  assert.equal(hook.requests.length, calls, 'answered from the cache');
  assert.equal(await metric(node, 'herald_auth_hook_cache_hits_total'), hits + 5);
  const other = await fetch(`${node.url}/sub?channel=room.cache`, { headers: { Cookie: 'sid=bob' } });
  assert.equal(other.status, 403);
  assert.equal(hook.requests.length, calls + 1);
});

test('/sse (EventSource with the cookie), /poll and /ws (URL channels, bare connect, then subscribe frames)', async () => {
  const withCookie = (input: string | URL | Request, init?: RequestInit): Promise<Response> =>
    fetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), Cookie: 'sid=alice' } });
  const es = new EventSource(`${node.url}/sse?channel=room.sse`, { fetch: withCookie });
  const got: string[] = [];
  es.onmessage = (e) => got.push(String(e.data));
  await new Promise<void>((ok, fail) => {
    es.onopen = () => ok();
    es.onerror = () => fail(new Error('EventSource refused'));
  });
  await publish(node.url, { channel: 'room.sse', data: 'sse' });
  await eventually(() => got.length === 1, 5000, 'an SSE message');
  es.close();
  assert.equal(asked(hook.requests[hook.requests.length - 1]!).transport, 'sse');

  const poll = fetch(`${node.url}/poll?channel=room.poll`, { headers: { Cookie: 'sid=alice' } });
  await eventually(() => node.server.node.sessionCount() > 0, 5000, 'the poll waiting');
  await new Promise((r) => setTimeout(r, 100));
  await publish(node.url, { channel: 'room.poll', data: 'polled' });
  const answer = (await (await poll).json()) as { messages: unknown[][] };
  assert.equal(answer.messages[0]?.[2], 'polled');
  const deniedPoll = await fetch(`${node.url}/poll?channel=room.poll`, { headers: { Cookie: 'sid=bob' } });
  assert.equal(deniedPoll.status, 403);

  // A bare WebSocket: the hook decides at connect, then its grant covers later subscribes. (A header the earlier
  // asks did not carry makes it a new credential, so the cache of the bare /sub above does not answer.)
  hook.requests.length = 0;
  const ws = await openWs(`${node.url}/ws`, { headers: { Cookie: 'sid=alice', 'X-Api-User': 'ws' } });
  assert.equal(hook.requests.length, 1);
  assert.equal(asked(hook.requests[0]!).event, 'connect');
  assert.deepEqual(asked(hook.requests[0]!).channels, []);
  const sub = await ws.request('subscribe', { channel: 'room.ws' });
  assert.equal(sub.type, 'reply', JSON.stringify(sub));
  assert.equal(hook.requests.length, 1, 'room.* was granted at connect: no new call');
  const refused = await ws.request('subscribe', { channel: 'user.bob' });
  assert.equal(refused.type, 'error');
  assert.equal(refused.error?.code, 'forbidden');
  assert.equal(asked(hook.requests[1]!).event, 'subscribe');
  assert.deepEqual(asked(hook.requests[1]!).channels, ['user.bob']);
  await publish(node.url, { channel: 'room.ws', data: 'ws' });
  await ws.waitFrames((f) => f.some((x) => x.type === 'message' && x.data === 'ws'), 5000, 'ws message');
  ws.close();
  await assert.rejects(openWs(`${node.url}/ws`, { headers: { Cookie: 'sid=bob' } }), (e: Error & { status?: number }) => e.status === 403);
  const urlWs = await openWs(`${node.url}/ws?channel=room.url`, { headers: { Cookie: 'sid=alice' } });
  urlWs.close();
});

test('200 clients arriving together with one cookie cost one call (slow hook: coalesced, then cached)', async () => {
  const slow = await startHookServer(async (req, res) => {
    await new Promise((r) => setTimeout(r, 400));
    backend(req, res);
  });
  const n = await startServer({ dev: false, authHook: slow.url, authHookCookies: ['sid'], authHookTimeoutMs: 10_000, metricsPublic: true });
  try {
    const streams = await Promise.all(
      Array.from({ length: 200 }, () => openStream(`${n.url}/sub?channel=room.crowd`, { Cookie: 'sid=alice' })),
    );
    assert.ok(streams.every((s) => s.status === 200));
    assert.equal(slow.requests.length, 1, `${slow.requests.length} calls for 200 clients`);
    const coalesced = await metric(n, 'herald_auth_hook_coalesced_total');
    const hits = await metric(n, 'herald_auth_hook_cache_hits_total');
    assert.equal(coalesced + hits, 199, `coalesced ${coalesced} + cached ${hits}`);
    assert.ok(coalesced > 0, 'some waited for the call in flight');
    await publish(n.url, { channel: 'room.crowd', data: 'all' });
    await Promise.all(streams.map((s) => s.waitLines(1)));
    for (const s of streams) s.close();
    assert.equal(await metric(n, 'herald_auth_hook_calls_total', { result: 'allow' }), 1);
    assert.equal(await metric(n, 'herald_auth_hook_duration_seconds_count'), 1);
    assert.ok((await metric(n, 'herald_auth_hook_duration_seconds_sum')) >= 0.35);
  } finally {
    await n.close();
    await slow.close();
  }
});

test('failures: timeout, down, 500, malformed, oversized and trickled answers are 503 under deny; allow lets the channels through', async () => {
  const answers: Record<string, (res: import('node:http').ServerResponse) => void> = {
    timeout: () => undefined, // never answers
    status: (res) => answerJson(res, 500, { allow: true }),
    redirect: (res) => {
      res.writeHead(302, { Location: 'http://127.0.0.1:1/' });
      res.end();
    },
    malformed: (res) => answerJson(res, 200, '{"allow": tru'),
    notDecision: (res) => answerJson(res, 200, { allow: 'yes' }),
    badChannels: (res) => answerJson(res, 200, { allow: true, channels: ['ok', 'bad\u0001'] }),
    tooManyChannels: (res) => answerJson(res, 200, { allow: true, channels: Array.from({ length: 1001 }, (_, i) => `c${i}`) }),
    oversized: (res) => answerJson(res, 200, { allow: true, user: 'x', info: 'x'.repeat(70_000) }),
    oversizedChunked: (res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write('{"allow":true,"info":"');
      for (let i = 0; i < 100; i++) res.write('y'.repeat(1024));
      res.end('"}');
    },
    trickle: (res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      const t = setInterval(() => res.write(' '), 50);
      res.once('close', () => clearInterval(t));
    },
  };
  let mode = 'timeout';
  const bad = await startHookServer((_req, res) => answers[mode]!(res));
  const deny = await startServer({ dev: false, authHook: bad.url, authHookCookies: ['sid'], authHookTimeoutMs: 300, metricsPublic: true });
  const allow = await startServer({
    dev: false,
    authHook: bad.url,
    authHookCookies: ['sid'],
    authHookTimeoutMs: 300,
    authHookFailure: 'allow',
    metricsPublic: true,
  });
  try {
    for (const m of Object.keys(answers)) {
      mode = m;
      const started = Date.now();
      const r = await fetch(`${deny.url}/sub?channel=f.${m}`, { headers: { Cookie: 'sid=alice' } });
      assert.equal(r.status, 503, m);
      assert.equal(r.headers.get('retry-after'), '1', m);
      assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'auth_hook_unavailable', m);
      assert.ok(Date.now() - started < 3000, `${m}: answered within the timeout's reach`);
      const ok = await openStream(`${allow.url}/sub?channel=f.${m}`, { Cookie: 'sid=alice' });
      assert.equal(ok.status, 200, `${m} under allow`);
      ok.close();
    }
    assert.ok((await metric(deny, 'herald_auth_hook_calls_total', { result: 'timeout' })) >= 2, 'timeout and trickle');
    assert.ok((await metric(deny, 'herald_auth_hook_calls_total', { result: 'invalid' })) >= 6);
    assert.ok((await metric(deny, 'herald_auth_hook_calls_total', { result: 'error' })) >= 2, '500 and 302');
    assert.equal(await metric(allow, 'herald_auth_hook_failures_allowed_total'), Object.keys(answers).length);
    // Failures are not cached: the hook back, the next ask succeeds.
    bad.respond = backend;
    const back = await openStream(`${deny.url}/sub?channel=room.back`, { Cookie: 'sid=alice' });
    assert.equal(back.status, 200);
    back.close();
    // A hook that is down (connection refused).
    await bad.close();
    const down = await fetch(`${deny.url}/sub?channel=room.down`, { headers: { Cookie: 'sid=alice' } });
    assert.equal(down.status, 503);
    // The node kept serving: a control subscriber of an anonymous channel is unaffected.
    assert.equal((await fetch(`${deny.url}/healthz`)).status, 200);
  } finally {
    await deny.close();
    await allow.close();
    await bad.close().catch(() => undefined);
  }
});

test('expiry: an answer with expiresAt ends the stream then (expired); one already past is 401', async () => {
  const soon = await startHookServer((_req, res) => answerJson(res, 200, { allow: true, user: 'u', expiresAt: Date.now() / 1000 + 1.5 }));
  const n = await startServer({ dev: false, authHook: soon.url, authHookCookies: ['sid'] });
  try {
    const s = await openStream(`${n.url}/sub?channel=x.exp`, { Cookie: 'sid=z' });
    assert.equal(s.status, 200);
    await s.ended;
    assert.match(s.lines.filter((l) => l !== '').pop() ?? '', /"disconnect","expired"/);
    soon.respond = (_req, res) => answerJson(res, 200, { allow: true, expiresAt: Date.now() / 1000 - 10 });
    const late = await fetch(`${n.url}/sub?channel=x.late`, { headers: { Cookie: 'sid=y' } });
    assert.equal(late.status, 401);
  } finally {
    await n.close();
    await soon.close();
  }
});

test('settings: authHook needs cookies or headers to key its answers; bad URLs and names stop start-up', () => {
  const base = { dev: true };
  assert.throws(() => resolveConfig({ overrides: { ...base, authHook: 'http://127.0.0.1:9/h' } }), /HERALD_AUTH_HOOK_COOKIES/);
  assert.throws(() => resolveConfig({ overrides: { ...base, authHook: 'file:///etc/passwd', authHookCookies: ['sid'] } }), /http/);
  assert.throws(() => resolveConfig({ overrides: { ...base, authHook: 'http://x/', authHookCookies: ['bad name'] } }), /cookie name/);
  assert.throws(() => resolveConfig({ overrides: { ...base, authHookFailure: 'maybe' as 'deny' } }), /deny, allow/);
  const c = resolveConfig({ overrides: { ...base, authHook: 'http://x/', authHookHeaders: ['X-Session'] } });
  assert.deepEqual(c.authHookHeaders, ['x-session']);
});

test("the hook's user names the connection: client_connected and client_disconnected webhooks carry it", async () => {
  const receiver = await startHookServer();
  const n = await startServer({
    dev: false,
    authHook: hook.url,
    authHookCookies: ['sid'],
    webhook: receiver.url,
    webhookSecret: 'webhook-secret-0123456789',
    webhookBatchMs: 20,
    webhookEvents: ['client_connected', 'client_disconnected'],
  });
  try {
    const s = await openStream(`${n.url}/sub?channel=room.wh`, { Cookie: 'sid=alice' });
    assert.equal(s.status, 200);
    s.close();
    const events = (): { name: string; user?: string }[] =>
      receiver.requests.flatMap((r) => (JSON.parse(r.body) as { events: { name: string; user?: string }[] }).events);
    await eventually(() => events().length >= 2, 5000, 'connected and disconnected');
    assert.deepEqual(events().map((e) => [e.name, e.user]), [['client_connected', 'alice'], ['client_disconnected', 'alice']]);
  } finally {
    await n.close();
    await receiver.close();
  }
});

test("presence lists the hook's user and info, for a /ws opened with the cookie alone and one with URL channels", async () => {
  const n = await startServer({ dev: false, authHook: hook.url, authHookCookies: ['sid'], namespaces: { room: { presence: true } } });
  try {
    // A bare connection, then a subscribe frame: the user comes from the connect answer.
    const bare = await openWs(`${n.url}/ws`, { headers: { Cookie: 'sid=alice' } });
    assert.equal((await bare.request('subscribe', { channel: 'room:lobby' })).type, 'reply');
    const viaUrl = await openWs(`${n.url}/ws?channel=room:lobby`, { headers: { Cookie: 'sid=carol' } });
    // Info over presenceMaxInfoBytes (1024) is left out, as a token's would be.
    const big = await openWs(`${n.url}/ws?channel=room:lobby`, { headers: { Cookie: 'sid=dave' } });
    const listed = await viaUrl.request('presence', { channel: 'room:lobby' });
    assert.equal(listed.type, 'reply', JSON.stringify(listed));
    const members = (listed.result?.['members'] as Record<string, unknown>[]).map((m) => [m['user'], m['info']]);
    assert.deepEqual(new Map(members as [string, unknown][]), new Map<string, unknown>([['alice', { name: 'Alice' }], ['carol', undefined], ['dave', undefined]]));
    big.close();
    bare.close();
    viaUrl.close();
  } finally {
    await n.close();
  }
});

test('at most authHookMaxConcurrent calls in flight: distinct credentials past it fail at once (503), counted', async () => {
  const slow = await startHookServer(async (_req, res) => {
    await new Promise((r) => setTimeout(r, 2000));
    answerJson(res, 200, { allow: true });
  });
  const n = await startServer({ dev: false, authHook: slow.url, authHookCookies: ['sid'], authHookMaxConcurrent: 2, authHookTimeoutMs: 10_000, metricsPublic: true });
  try {
    const started = Date.now();
    const answers = await Promise.all(
      ['a', 'b', 'c', 'd', 'e'].map(async (sid, i) => {
        // The first two go out first; the rest arrive while they are in flight.
        if (i >= 2) await new Promise((r) => setTimeout(r, 150));
        const res = await fetch(`${n.url}/poll?channel=q.${sid}`, { headers: { Cookie: `sid=${sid}` }, signal: AbortSignal.timeout(5000) }).catch(() => undefined);
        const status = res?.status ?? 0;
        await res?.body?.cancel();
        return { sid, status, ms: Date.now() - started };
      }),
    );
    const refused = answers.filter((a) => a.status === 503);
    assert.equal(slow.requests.length, 2, 'two calls reached the backend');
    assert.equal(refused.length, 3, JSON.stringify(answers));
    assert.ok(refused.every((a) => a.ms < 1500), `refused without waiting for the hook: ${JSON.stringify(refused)}`);
    assert.equal(await metric(n, 'herald_auth_hook_overloaded_total'), 3);
  } finally {
    await n.close();
    await slow.close();
  }
});
