/**
 * The one way a transport opens a subscription: admit (the node's limits, before any auth work) → authorize (the
 * transport's credentials) → open (the session joins its channels: live) → attach (the transport's sink, once its
 * answer is out). `/sub`, `/sse`, `/poll` and `/ws` differ only in how they authorize, which encoder and options
 * they pick, and what their sink is.
 */
import type { HeraldNode, ResumeRequest } from '../core/node.js';
import type { Session, SessionOptions, SessionSink, SessionTarget } from '../core/session.js';
import type { FrameEncoder } from '../protocol/frames.js';

/** What authorizing gave: the channels, and who the client is. */
export interface Authorized {
  readonly targets: readonly SessionTarget[];
  /** Milliseconds since the epoch when the credentials expire. */
  readonly expiresAt?: number | undefined;
  readonly subject?: string | undefined;
  readonly info?: string | undefined;
}

/** How the transport wants the session opened, once it knows what was authorized. */
export interface Opening {
  readonly codec: FrameEncoder;
  readonly resume?: ResumeRequest | undefined;
  /** The transport's own session options (`joinLeave`, `replayInPieces`, ...). */
  readonly options?: Partial<SessionOptions>;
}

export interface SubscriptionRequest<A extends Authorized> {
  readonly transport: string;
  readonly remoteAddress: string;
  readonly maxQueueBytes: number;
  authorize(): Promise<A>;
  open(auth: A): Opening;
}

/**
 * Admit, authorize and open. Resolves once every subscription is live (the caller then answers and attaches);
 * rejects as the node or the authorizer does, with nothing left subscribed.
 */
export async function openSubscription<A extends Authorized>(
  node: HeraldNode,
  req: SubscriptionRequest<A>,
): Promise<{ session: Session; auth: A }> {
  node.admit(req.remoteAddress);
  const auth = await req.authorize();
  const opening = req.open(auth);
  const options: SessionOptions = {
    transport: req.transport,
    remoteAddress: req.remoteAddress,
    maxQueueBytes: req.maxQueueBytes,
    ...(auth.expiresAt !== undefined ? { expiresAt: auth.expiresAt } : {}),
    ...(auth.subject !== undefined ? { user: auth.subject } : {}),
    ...(auth.info !== undefined ? { info: auth.info } : {}),
    ...opening.options,
  };
  const session = await node.openSession(opening.codec, auth.targets, options, opening.resume);
  return { session, auth };
}

/**
 * Hand an open session its sink. A client gone meanwhile (`gone`) ends the session; so does a sink that cannot be
 * made (the error is rethrown: the subscriptions must not outlive the request). Returns the sink, once attached.
 */
export function attachSink<S extends SessionSink>(session: Session, gone: boolean, makeSink: () => S): S | undefined {
  if (gone) {
    session.clientGone();
    return undefined;
  }
  let sink: S;
  try {
    sink = makeSink();
  } catch (err) {
    session.clientGone();
    throw err;
  }
  session.attach(sink);
  return sink;
}
