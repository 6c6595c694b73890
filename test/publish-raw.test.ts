/**
 * Raw publishing (issue 9 §4): `POST /api/publish?channel=C` with the data as the body, as Nchan and Mercure users
 * publish with `curl -d`. On the fast path (a Content-Length body on a fresh connection) and on node:http's path
 * (a chunked body), through curl, fetch and `herald publish --raw`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { cleanEnv, runHerald } from './helpers/cli.js';
import { openStream, startServer, TEST_API_KEY, type TestServer } from './helpers/server.js';

const run = promisify(execFile);

let dev: TestServer;
let prod: TestServer;
before(async () => {
  dev = await startServer({ maxBodyBytes: 1024, maxChannelsPerConnection: 3 });
  prod = await startServer({ dev: false });
});
after(async () => {
  await dev.close();
  await prod.close();
});

/** curl's answer: status and body. `args` go before the URL. */
async function curl(url: string, args: string[]): Promise<{ status: number; body: unknown }> {
  const { stdout } = await run('curl', ['-sS', '-w', '\n%{http_code}', ...args, url]);
  const cut = stdout.lastIndexOf('\n');
  return { status: Number(stdout.slice(cut + 1)), body: JSON.parse(stdout.slice(0, cut)) as unknown };
}

for (const [path, extra] of [
  ['fast path', [] as string[]],
  ['node:http', ['-H', 'Transfer-Encoding: chunked']],
] as const) {
  test(`${path}: curl -d publishes the body verbatim, whatever it looks like`, async (t) => {
    const channel = `raw-${extra.length}`;
    const s = await openStream(`${dev.url}/sub?channel=${channel}`);
    t.after(() => s.close());
    const plain = await curl(`${dev.url}/api/publish?channel=${channel}`, [...extra, '-d', 'hello']);
    assert.equal(plain.status, 200, JSON.stringify(plain.body));
    assert.ok(plain.body !== null && typeof plain.body === 'object' && 'id' in plain.body, JSON.stringify(plain.body));
    // Looks like JSON, but a form or text type says text: the bytes are the data.
    await curl(`${dev.url}/api/publish?channel=${channel}`, [...extra, '-H', 'Content-Type: text/plain', '--data-binary', '{"a": 1}\nline 2']);
    await curl(`${dev.url}/api/publish?channel=${channel}`, [...extra, '--data-binary', 'café ✓']);
    assert.deepEqual(await s.waitLines(3), [
      `["message","${channel}","hello"]`,
      `["message","${channel}","{\\"a\\": 1}\\nline 2"]`,
      `["message","${channel}","café ✓"]`,
    ]);
  });
}

test('a JSON content type makes the body the data as JSON: a string is that string, a value its JSON text', async (t) => {
  const s = await openStream(`${dev.url}/sub?channel=rawjson`);
  t.after(() => s.close());
  const json = ['-H', 'Content-Type: application/json; charset=utf-8'];
  assert.equal((await curl(`${dev.url}/api/publish?channel=rawjson`, [...json, '-d', '{"a": [1, 2]}'])).status, 200);
  assert.equal((await curl(`${dev.url}/api/publish?channel=rawjson`, [...json, '-d', '"text"'])).status, 200);
  const bad = await curl(`${dev.url}/api/publish?channel=rawjson`, [...json, '-d', '{not json']);
  assert.equal(bad.status, 400);
  assert.equal((bad.body as { error: { code: string } }).error.code, 'bad_request');
  assert.deepEqual(await s.waitLines(2), ['["message","rawjson","{\\"a\\":[1,2]}"]', '["message","rawjson","text"]']);
});

test('several channel= publish to each and answer {"ids"}; an empty body is an empty message', async (t) => {
  const s = await openStream(`${dev.url}/sub?channel=ra&channel=rb`);
  t.after(() => s.close());
  const res = await fetch(`${dev.url}/api/publish?channel=ra&channel=rb`, { method: 'POST', body: 'two' });
  assert.equal(res.status, 200);
  const ids = ((await res.json()) as { ids: unknown[] }).ids;
  assert.equal(ids.length, 2);
  assert.deepEqual((await s.waitLines(2)).sort(), ['["message","ra","two"]', '["message","rb","two"]']);
  assert.equal((await fetch(`${dev.url}/api/publish?channel=ra`, { method: 'POST', body: '' })).status, 200);
  assert.deepEqual(await s.waitLines(3).then((l) => l[2]), '["message","ra",""]');
});

test('refused raw publishes: not UTF-8, bad or too many channels, over maxBodyBytes; the node carries on', async () => {
  const post = async (query: string, body: string | Uint8Array): Promise<[number, string]> => {
    const res = await fetch(`${dev.url}/api/publish?${query}`, { method: 'POST', body });
    return [res.status, ((await res.json()) as { error: { code: string } }).error.code];
  };
  assert.deepEqual(await post('channel=r', new Uint8Array([0x68, 0xff, 0x69])), [400, 'bad_request']);
  assert.deepEqual(await post('channel=a%00b', 'x'), [400, 'invalid_channel']);
  assert.deepEqual(await post('channel=a&channel=b&channel=c&channel=d', 'x'), [400, 'too_many_channels']);
  assert.deepEqual(await post('channel=r', 'x'.repeat(2000)), [413, 'payload_too_large']);
  assert.equal((await fetch(`${dev.url}/api/publish?channel=r`, { method: 'POST', body: 'ok' })).status, 200);
});

test('outside --dev a raw publish needs the API key, on both paths', async () => {
  const url = `${prod.url}/api/publish?channel=secure`;
  assert.equal((await curl(url, ['-d', 'x'])).status, 401);
  assert.equal((await curl(url, ['-H', 'Transfer-Encoding: chunked', '-d', 'x'])).status, 401);
  const ok = await curl(url, ['-H', `Authorization: Bearer ${TEST_API_KEY}`, '-d', 'x']);
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
});

test('an Idempotency-Key header works on a raw publish as on a JSON one', async () => {
  const once = ['-H', 'Idempotency-Key: raw-once', '-d', 'x'];
  const first = await curl(`${dev.url}/api/publish?channel=rawkey`, once);
  const again = await curl(`${dev.url}/api/publish?channel=rawkey`, once);
  assert.equal((again.body as { id: string }).id, (first.body as { id: string }).id);
  assert.equal((again.body as { replayed?: boolean }).replayed, true);
});

test('herald publish --raw sends DATA as the body: verbatim, even when it looks like JSON', async (t) => {
  const s = await openStream(`${dev.url}/sub?channel=cliraw`);
  t.after(() => s.close());
  const done = await runHerald(['publish', 'cliraw', '{"x":1}', '--raw', '--server', dev.url], cleanEnv());
  assert.equal(done.code, 0, done.stderr);
  assert.match(done.stdout, /"id"/);
  assert.deepEqual(await s.waitLines(1), ['["message","cliraw","{\\"x\\":1}"]']);
  const both = await runHerald(['publish', 'cliraw', 'x', '--raw', '--json', '--server', dev.url], cleanEnv());
  assert.equal(both.code, 2, both.stderr);
});
