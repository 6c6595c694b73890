/** @herald/client: the Herald client SDK for browsers and Node 20+. */
export { HeraldClient } from './client.js';
export { fullJitterDelay } from './backoff.js';
export type * from './types.js';
