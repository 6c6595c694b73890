/**
 * JSON with comments, as tsconfig.json and VS Code's settings take it: `// line` and `/* block *\/` comments are
 * allowed between values; everything else is plain JSON (no trailing commas). Used for the config file, so that the
 * starter file `herald config init` writes can explain each setting.
 */

/** Where a config file stops being JSON, as `line L, column C: what`. */
export class JsoncError extends Error {
  override name = 'JsoncError';
}

export function parseJsonc(text: string): unknown {
  const json = stripComments(text);
  try {
    return JSON.parse(json) as unknown;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const at = /at position (\d+)/.exec(message);
    const what = message.replace(/ in JSON at position \d+.*$/s, '').replace(/\s*\(line \d+ column \d+\)$/, '');
    if (!at?.[1]) throw new JsoncError(what);
    throw new JsoncError(`${lineColumn(text, Number(at[1]))}: ${what}`);
  }
}

/**
 * The text with every comment replaced by spaces (newlines kept), so positions in the result are positions in the
 * file. Slashes inside strings are left alone.
 */
export function stripComments(text: string): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      const end = stringEnd(text, i);
      out += text.slice(i, end);
      i = end;
    } else if (c === '/' && text[i + 1] === '/') {
      const end = text.indexOf('\n', i);
      const stop = end === -1 ? text.length : end;
      out += ' '.repeat(stop - i);
      i = stop;
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      if (end === -1) throw new JsoncError(`${lineColumn(text, i)}: unterminated /* comment`);
      out += text.slice(i, end + 2).replace(/[^\n]/g, ' ');
      i = end + 2;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** Index just past the string that opens at `start` (or the end of the text: JSON.parse reports it). */
function stringEnd(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '"' || text[i] === '\n') return i + 1;
  }
  return text.length;
}

function lineColumn(text: string, position: number): string {
  const before = text.slice(0, position);
  const line = before.split('\n').length;
  const column = position - before.lastIndexOf('\n');
  return `line ${line}, column ${column}`;
}
