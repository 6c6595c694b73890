/**
 * A small structured logger: one line per event on stderr, JSON (`logFormat: json`, the default) or `key=value`
 * text. Every line passes through `redact` first: credentials never reach a log, whatever a caller passes (fields
 * named like a credential are masked, and tokens, bearer credentials, query-string keys and URL passwords inside
 * any text are masked too). Callers still pass paths, never full URLs.
 */
import type { LogFormat, LogLevel } from '../config.js';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export type LogFields = Record<string, string | number | boolean | undefined>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** An access-log line (one per request or stream): written at any level but `silent`. Absent: `info` is used. */
  access?(fields: LogFields): void;
}

export const REDACTED = '[redacted]';

/** Field names whose values are credentials, whatever they hold. */
const SECRET_FIELD = /token|secret|passw|authorization|cookie|api_?key|sealed|credential|^key$|^keys$/i;
const TEXT_PATTERNS: [RegExp, string][] = [
  // A JWT (three base64url parts, the first a JSON header).
  [/\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*/g, REDACTED],
  // Authorization header values.
  [/\b(Bearer|Basic)\s+[^\s",;]+/gi, `$1 ${REDACTED}`],
  // Credentials in a query string or a form body.
  [/([?&;\s]|^)(token|key|api_?key|access_token|secret|password|auth|sig)=[^&\s"]*/gi, `$1$2=${REDACTED}`],
  // A password in a URL's user info (redis://user:password@host).
  [/(\b[a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)[^@\s/]*@/gi, `$1${REDACTED}@`],
];

/** Mask credentials in a text. */
export function redactText(text: string): string {
  let out = text;
  for (const [pattern, replacement] of TEXT_PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

/** Mask credential fields and credentials inside text fields. */
export function redact(fields: LogFields | undefined): LogFields {
  const out: LogFields = {};
  if (!fields) return out;
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    out[k] = SECRET_FIELD.test(k) ? REDACTED : typeof v === 'string' ? redactText(v) : v;
  }
  return out;
}

// A value with spaces, quotes, `=` or control characters is JSON-quoted: a client's path cannot forge a line.
// eslint-disable-next-line no-control-regex
const NEEDS_QUOTES = /[\s"=\\\u0000-\u001f\u007f]/;

/** One line: JSON, or `TIME LEVEL msg key=value ...` (values with spaces or quotes are JSON-quoted). */
export function formatLine(format: LogFormat, level: string, msg: string, fields: LogFields): string {
  const t = new Date().toISOString();
  if (format === 'json') return JSON.stringify({ t, level, msg: redactText(msg), ...fields }) + '\n';
  let line = `${t} ${level.toUpperCase()} ${redactText(msg)}`;
  for (const [k, v] of Object.entries(fields)) {
    const s = String(v);
    line += ` ${k}=${s === '' || NEEDS_QUOTES.test(s) ? JSON.stringify(s) : s}`;
  }
  return line + '\n';
}

export function createLogger(
  level: LogLevel,
  write: (line: string) => void = (l) => process.stderr.write(l),
  format: LogFormat = 'json',
): Logger {
  const min = RANK[level];
  const emit = (lvl: LogLevel, msg: string, fields?: LogFields): void => {
    if (RANK[lvl] < min) return;
    write(formatLine(format, lvl, msg, redact(fields)));
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    access: (f) => {
      if (level !== 'silent') write(formatLine(format, 'info', 'access', redact(f)));
    },
  };
}
