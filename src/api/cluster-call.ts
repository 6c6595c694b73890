/**
 * A server API call that every node answers (channels, disconnect, unsubscribe): asked over the control path
 * (`api.q`, to every node), answered to the asker (`api.r`). The caller waits for every node that shares stats
 * (core/node-stats.ts), at most `waitMs`, and is told which did not answer. Arguments arriving from another node are
 * checked by the handler as if they came from a client.
 */
import { randomBytes } from 'node:crypto';
import type { ControlMessage } from '../core/control-path.js';
import type { ClusterStats } from '../core/node-stats.js';
import type { HeraldNode } from '../core/node.js';
import { HeraldError } from '../errors.js';

const QUERY = 'api.q';
const REPLY = 'api.r';
/** Calls waiting for other nodes at once; more answer 429. */
const MAX_IN_FLIGHT = 64;

export type LocalCall = (args: Record<string, unknown>) => Record<string, unknown>;

export interface NodeAnswer {
  readonly node: string;
  readonly result: Record<string, unknown>;
}

export interface ClusterAnswer {
  /** This node's answer first. */
  readonly answers: readonly NodeAnswer[];
  /** Nodes that share stats and did not answer within the wait. */
  readonly unanswered: readonly string[];
}

interface Pending {
  readonly waitingFor: Set<string>;
  readonly answers: NodeAnswer[];
  done(): void;
}

export class ClusterCalls {
  private readonly calls = new Map<string, LocalCall>();
  private readonly pending = new Map<string, Pending>();

  constructor(
    private readonly node: HeraldNode,
    private readonly stats: ClusterStats,
    private readonly waitMs = 1000,
  ) {
    node.control.on(QUERY, (m) => this.answer(m));
    node.control.on(REPLY, (m) => this.reply(m));
  }

  /** A call every node runs on its own sessions (its handler validates `args`). */
  register(name: string, call: LocalCall): void {
    this.calls.set(name, call);
  }

  /** Run `name` here and on every other node; resolves with the answers gathered. */
  async everywhere(name: string, args: Record<string, unknown>): Promise<ClusterAnswer> {
    const call = this.calls.get(name);
    if (!call) throw new Error(`no cluster call ${name}`);
    const own: NodeAnswer = { node: this.node.nodeId, result: call(args) };
    const peers = this.stats.nodes().map((s) => s.node).filter((id) => id !== this.node.nodeId);
    if (peers.length === 0) return { answers: [own], unanswered: [] };
    if (this.pending.size >= MAX_IN_FLIGHT) throw new HeraldError('too_many_requests', 'too many cluster-wide calls at once');
    const req = randomBytes(8).toString('hex');
    let timer: NodeJS.Timeout | undefined;
    let done = (): void => undefined;
    const finished = new Promise<void>((resolve) => {
      done = resolve;
      timer = setTimeout(resolve, this.waitMs);
    });
    const pending: Pending = { waitingFor: new Set(peers), answers: [], done: () => done() };
    this.pending.set(req, pending);
    try {
      await this.node.control.send(QUERY, { req, call: name, args });
      await finished;
    } catch {
      // The broker is down: this node's answer is all there is; the others are unanswered.
    } finally {
      clearTimeout(timer);
      this.pending.delete(req);
    }
    return { answers: [own, ...pending.answers], unanswered: [...pending.waitingFor] };
  }

  private answer(m: ControlMessage): void {
    const { req, call, args } = m.body;
    if (typeof req !== 'string' || req.length > 32 || typeof call !== 'string') return;
    const run = this.calls.get(call);
    if (!run || typeof args !== 'object' || args === null || Array.isArray(args)) return;
    let result: Record<string, unknown>;
    try {
      result = run(args as Record<string, unknown>);
    } catch {
      return; // Bad arguments from a peer: nothing to answer.
    }
    this.node.control.send(REPLY, { req, result }, m.from).catch(() => undefined);
  }

  private reply(m: ControlMessage): void {
    const { req, result } = m.body;
    const pending = typeof req === 'string' ? this.pending.get(req) : undefined;
    if (!pending || !pending.waitingFor.has(m.from) || typeof result !== 'object' || result === null || Array.isArray(result)) return;
    pending.waitingFor.delete(m.from);
    pending.answers.push({ node: m.from, result: result as Record<string, unknown> });
    if (pending.waitingFor.size === 0) pending.done();
  }
}
