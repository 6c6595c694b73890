/** The route table decides which reader serves a request line; every route has one entry. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pathOf, readerFor, ROUTES } from './routes.js';

test('readerFor: plain GET streams to the front reader, POST publish to the fast path, the rest to node:http', () => {
  assert.equal(readerFor('GET', '/sub'), 'front');
  assert.equal(readerFor('GET', '/sse'), 'front');
  assert.equal(readerFor('POST', '/api/publish'), 'fast-publish');
  assert.equal(readerFor('POST', '/sub'), 'node'); // node:http answers its 405
  assert.equal(readerFor('HEAD', '/sse'), 'node');
  assert.equal(readerFor('GET', '/api/publish'), 'node');
  assert.equal(readerFor('GET', '/poll'), 'node');
  assert.equal(readerFor('GET', '/sub/'), 'node');
  assert.equal(readerFor('GET', '/nope'), 'node');
});

test('every path is declared once', () => {
  const paths = Object.values(ROUTES).map((r) => r.path);
  assert.equal(new Set(paths).size, paths.length);
  assert.equal(pathOf('/sub?channel=a?b'), '/sub');
  assert.equal(pathOf('/sub'), '/sub');
});
