/**
 * Client JSON, bounded: every place that parses JSON a client sent (WebSocket frames, publish API bodies) goes
 * through here, so none of them can be made to throw by a document nested deeper than it can handle.
 *
 * Why a depth bound: `JSON.parse` copes with deep nesting, but `JSON.stringify` (a publish's non-string `data` is
 * re-serialized) recurses and throws a RangeError a few thousand levels down, which escaped a WebSocket handler and
 * ended the process (issue 15). The depth is checked on the bytes before they are parsed, by one linear scan that
 * skips strings with `indexOf`, so a deep document is refused before any of it is built. Cost (docs/security.md):
 * well under a microsecond for a 1 KB body, about half of JSON.parse's time for 60 KB of small objects, nothing
 * for long strings.
 * Pure functions, no I/O.
 */

/** Default for `maxJsonDepth`: objects and arrays nested deeper than this are refused (System.Text.Json's default). */
export const DEFAULT_MAX_JSON_DEPTH = 64;

/**
 * Why client JSON was refused; callers map it to their documented answer (`bad_frame` on /ws, 400 on HTTP;
 * `tooLarge`: 413 on HTTP, a `payload_too_large` error reply on /ws).
 */
export class JsonRefused extends Error {
  constructor(message: string, readonly tooLarge = false) {
    super(message);
    this.name = 'JsonRefused';
  }
}

/**
 * Does the JSON in `bytes` (UTF-8) nest objects and arrays deeper than `maxDepth`? Exact for valid JSON (the
 * top-level object is depth 1); for invalid JSON the answer does not matter, since parsing fails anyway.
 * It scans bytes, not a string: `"`, `\` and brackets are ASCII and never inside a multi-byte sequence, typed-array
 * reads are about twice as fast as `charCodeAt`, and `indexOf` jumps over the contents of strings natively.
 */
export function nestedDeeperThan(bytes: Uint8Array, maxDepth: number): boolean {
  const n = bytes.length;
  // A document needs more than maxDepth brackets to be too deep.
  if (n <= maxDepth) return false;
  let depth = 0;
  for (let i = 0; i < n; i++) {
    const c = bytes[i];
    if (c === 0x22 /* " */) {
      i = stringEnd(bytes, i);
      if (i < 0) return false;
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > maxDepth) return true;
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) {
      depth--;
    }
  }
  return false;
}

/** Index of the quote closing the string opened at `open`, or -1 when it is never closed. */
function stringEnd(bytes: Uint8Array, open: number): number {
  let at = open;
  for (;;) {
    at = bytes.indexOf(0x22, at + 1);
    if (at < 0) return -1;
    // Escaped when preceded by an odd number of backslashes.
    let backslashes = 0;
    while (bytes[at - 1 - backslashes] === 0x5c) backslashes++;
    if (backslashes % 2 === 0) return at;
  }
}

/**
 * Parse client JSON (UTF-8 bytes) with a depth bound. Throws JsonRefused (never anything else) when it is not JSON
 * or too deep. Invalid UTF-8 is decoded as U+FFFD, as everywhere else in Herald.
 */
export function parseClientJson(bytes: Buffer, maxDepth: number): unknown {
  if (nestedDeeperThan(bytes, maxDepth)) throw new JsonRefused(`JSON nested deeper than ${maxDepth} levels`);
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch {
    throw new JsonRefused('not JSON');
  }
}

/**
 * The text a publish carries for a client's `data`: a string as is, anything else as its JSON text, at most
 * `maxChars` long (re-serializing can lengthen a document: `1e5` becomes `100000`). Throws JsonRefused when too long,
 * or, as a last guard, when the value cannot be serialized.
 */
export function dataText(data: unknown, maxChars: number): string {
  if (typeof data === 'string') return data;
  let text: string;
  try {
    text = JSON.stringify(data);
  } catch {
    throw new JsonRefused('data cannot be serialized');
  }
  if (text.length > maxChars) throw new JsonRefused(`data over ${maxChars} characters as JSON text`, true);
  return text;
}
