/**
 * Herald's errors: one class, one code table. Every error a client can see has a stable `code` and an HTTP status
 * (for errors before a stream starts; on `/ws` an error answers one request with the same `code`). Why a live stream
 * ended is a separate table (DISCONNECT_TABLE below), with the close codes.
 *
 * Close codes follow the ranges of Centrifugo's protocol so a client can decide without knowing each code:
 *   3000-3499  the client may reconnect (with backoff)        3500-3999  the client must not reconnect as is
 */

export const ERROR_TABLE = {
  bad_request: { status: 400, message: 'malformed request' },
  invalid_channel: { status: 400, message: 'invalid channel name' },
  too_many_channels: { status: 400, message: 'too many channels in one subscription' },
  unauthorized: { status: 401, message: 'missing or invalid credentials' },
  token_expired: { status: 401, message: 'credentials expired' },
  forbidden: { status: 403, message: 'channel not granted' },
  origin_not_allowed: { status: 403, message: 'origin not allowed' },
  host_not_allowed: { status: 403, message: 'Host not allowed: in --dev only localhost or the configured host' },
  not_found: { status: 404, message: 'not found' },
  method_not_allowed: { status: 405, message: 'method not allowed' },
  payload_too_large: { status: 413, message: 'payload too large' },
  uri_too_long: { status: 414, message: 'request URI too long' },
  request_timeout: { status: 408, message: 'request not received in time' },
  header_too_large: { status: 431, message: 'request headers too large' },
  too_many_requests: { status: 429, message: 'too many requests' },
  unavailable: { status: 503, message: 'service unavailable' },
  /**
   * The broker (Redis) is unreachable and did not come back within `brokerWaitMs`: retry (HTTP answers carry
   * `Retry-After`). Not final: a client that treats it as final is stranded by a short outage.
   */
  broker_unavailable: { status: 503, message: 'broker unavailable: retry shortly' },
  /**
   * The auth hook (`authHook`) did not answer in time, could not be reached, or answered something that is not a
   * decision, and `authHookFailure` is `deny`: retry (the hook may be back).
   */
  auth_hook_unavailable: { status: 503, message: 'auth hook unavailable: retry shortly' },
  /** A publish was sent to the broker but not answered in time: it may or may not have been published. */
  outcome_unknown: { status: 504, message: 'publish outcome unknown: retry with the same idempotency key' },
  internal: { status: 500, message: 'internal error' },
} as const;

export type ErrorCode = keyof typeof ERROR_TABLE;

/** The `Retry-After` of every 503 answer, in seconds. */
export const RETRY_AFTER_SECONDS = 1;

export class HeraldError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? ERROR_TABLE[code].message, options);
    this.name = 'HeraldError';
    this.code = code;
  }
  get status(): number {
    return ERROR_TABLE[this.code].status;
  }
  /**
   * `Retry-After` seconds for an HTTP answer: every 503 (broker down, draining, full) is worth retrying shortly, and
   * standard clients (curl --retry, HTTP libraries) read the header.
   */
  get retryAfterSeconds(): number | undefined {
    return this.status === 503 ? RETRY_AFTER_SECONDS : undefined;
  }
  /** The JSON body of an HTTP error response: `{"error":{"code":"...","message":"..."}}`. */
  toJSON(): { error: { code: ErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

/** Turn anything thrown into a HeraldError; unknown errors become `internal` without leaking their text. */
export function toHeraldError(err: unknown): HeraldError {
  if (err instanceof HeraldError) return err;
  return new HeraldError('internal', undefined, { cause: err });
}

/**
 * Why a live stream ended. Sent as the last NDJSON line (`["disconnect","<reason>",<code>]`), the last SSE event
 * (`event: disconnect`) or the WebSocket close frame. `reconnect` tells the client whether trying again can help.
 */
export const DISCONNECT_TABLE = {
  shutdown: { code: 3001, reconnect: true, message: 'node is shutting down, reconnect elsewhere' },
  slow: { code: 3002, reconnect: true, message: 'client too slow: outgoing queue full' },
  expired: { code: 3003, reconnect: true, message: 'credentials expired, reconnect with fresh ones' },
  dead_peer: { code: 3004, reconnect: true, message: 'no answer to heartbeat' },
  broker_lost: { code: 3005, reconnect: true, message: 'broker connection lost' },
  /** The stream could not start: the broker is unreachable (the same code as the `broker_unavailable` error). */
  broker_unavailable: { code: 3016, reconnect: true, message: 'broker unavailable: retry shortly' },
  insufficient_state: { code: 3010, reconnect: true, message: 'messages were missed, reload state' },
  disconnected: { code: 3530, reconnect: false, message: 'disconnected by an operator' },
  bad_frame: { code: 3501, reconnect: false, message: 'bad frame' },
  forbidden: { code: 3506, reconnect: false, message: 'not allowed' },
  too_large: { code: 1009, reconnect: false, message: 'frame too large' },
} as const;

export type DisconnectReason = keyof typeof DISCONNECT_TABLE;
