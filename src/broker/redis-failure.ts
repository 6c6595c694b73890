/**
 * Why Redis could not be reached, in words an operator can act on: host not found, connection refused, auth
 * failed, TLS, timeout. The broker's errors wrap the client's (HeraldError 'unavailable' → node-redis → the socket's
 * error), so the cause is looked for down the whole chain.
 */

interface ErrorLike {
  name?: unknown;
  message?: unknown;
  code?: unknown;
  hostname?: unknown;
  address?: unknown;
  port?: unknown;
  cause?: unknown;
  errors?: unknown;
}

/** Every error in `err`'s cause chain (and an AggregateError's errors), outermost first. */
function chain(err: unknown): ErrorLike[] {
  const out: ErrorLike[] = [];
  const visit = (e: unknown, depth: number): void => {
    if (typeof e !== 'object' || e === null || depth > 8 || out.includes(e as ErrorLike)) return;
    const x = e as ErrorLike;
    out.push(x);
    if (Array.isArray(x.errors)) for (const inner of x.errors) visit(inner, depth + 1);
    visit(x.cause, depth + 1);
  };
  visit(err, 0);
  return out;
}

const TLS_CODE = /^(ERR_SSL_|ERR_TLS_|CERT_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|UNABLE_TO_(VERIFY|GET)_|HOSTNAME_MISMATCH$|EPROTO$)/;

/**
 * One line: `connection refused (127.0.0.1:6379)`, `auth failed: WRONGPASS invalid username-password pair ...`.
 * With the `url` tried, a `rediss://` (TLS) attempt that got no answer says that the port may not speak TLS.
 */
export function redisFailureCause(err: unknown, url = ''): string {
  const cause = describe(err);
  return url.startsWith('rediss://') && /^(timed out|connection reset)/.test(cause) ? `${cause} (rediss:// is TLS: does this port speak TLS?)` : cause;
}

function describe(err: unknown): string {
  const errors = chain(err);
  const text = (e: ErrorLike): string => (typeof e.message === 'string' ? e.message.split('\n')[0] ?? '' : '');
  const at = (e: ErrorLike): string =>
    typeof e.address === 'string' ? ` (${e.address}${typeof e.port === 'number' ? `:${e.port}` : ''})` : '';
  for (const e of errors) {
    const code = typeof e.code === 'string' ? e.code : '';
    const message = text(e);
    if (/^(WRONGPASS|NOAUTH)\b/.test(message) || /^ERR (AUTH|invalid password|Client sent AUTH)/i.test(message)) {
      return `auth failed: ${message}`;
    }
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME') {
      return `host not found${typeof e.hostname === 'string' ? ` (${e.hostname})` : ''}: ${code}`;
    }
    if (code === 'ECONNREFUSED') return `connection refused${at(e)}`;
    if (TLS_CODE.test(code) || /\b(SSL|TLS)\b|certificate/i.test(message)) return `TLS failed: ${message || code}`;
    if (code === 'ETIMEDOUT' || e.name === 'ConnectionTimeoutError' || e.name === 'TimeoutError' || / timed out$|^Connection timeout$/.test(message)) {
      return `timed out${at(e)}: ${e.code === 'ETIMEDOUT' && message !== '' ? message : 'no answer within redisTimeoutMs'}`;
    }
    if (code === 'ECONNRESET' || code === 'EPIPE') return `connection reset by the server${at(e)} (TLS against a plain port, or the reverse?)`;
    if (/^Unknown RESP type/.test(message)) return `not a Redis server${at(e)}: it answered something else (wrong port?)`;
    if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return `no route to the host${at(e)}: ${code}`;
  }
  // Nothing known: the innermost message says the most.
  const inner = [...errors].reverse().find((e) => text(e) !== '');
  return inner ? text(inner) : String(err);
}
