/**
 * JSON data (docs/protocol.md "JSON data"): a publication whose `data` is JSON text is written into frames as the
 * value itself. Frames are built by concatenating that text, so it must be valid JSON and must not hold CR or LF
 * (an SSE event would end there). Herald's own publishers produce it with JSON.stringify; text from elsewhere (a
 * Redis backend calling herald_publish with the json flag) is checked here, once per message and node, never per
 * subscriber. Pure functions, no I/O.
 */

/**
 * `text` as frame-safe JSON data, or undefined when it is not JSON (the caller then delivers it as a string). CR
 * and LF in valid JSON can only be whitespace between tokens, so they become spaces: the value is unchanged.
 */
export function jsonDataText(text: string): string | undefined {
  try {
    JSON.parse(text);
  } catch {
    return undefined;
  }
  return /[\r\n]/.test(text) ? text.replace(/[\r\n]/g, ' ') : text;
}

/** Is a client's `data` published as JSON (every JSON value but a string, which is published as the text itself)? */
export function isJsonValue(data: unknown): boolean {
  return typeof data !== 'string';
}
