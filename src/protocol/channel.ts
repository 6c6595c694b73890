/** Channel names: 1 to 255 bytes of UTF-8, no control characters. Glob characters (`*?[]`) are ordinary. */

export const MAX_CHANNEL_BYTES = 255;
// C0 controls, DEL and C1 controls.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Returns the reason a channel name is invalid, or undefined when it is valid. */
export function channelProblem(name: string): string | undefined {
  if (name.length === 0) return 'channel name is empty';
  if (Buffer.byteLength(name, 'utf8') > MAX_CHANNEL_BYTES) return `channel name is over ${MAX_CHANNEL_BYTES} bytes`;
  if (CONTROL.test(name)) return 'channel name contains a control character';
  if (LONE_SURROGATE.test(name)) return 'channel name is not valid UTF-8';
  return undefined;
}
