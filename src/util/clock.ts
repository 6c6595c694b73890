/**
 * Time as the server's timers see it: the node's one ticker (heartbeats, credential expiry, close grace, poll
 * deadlines, broker waits) and the embedded broker's history TTLs. Injected, so a unit test moves time on by hand
 * (`ManualClock.advance`) instead of waiting real seconds.
 */

/** A repeating timer made by a Clock. */
export interface Repeating {
  stop(): void;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Call `fn` every `ms` milliseconds until stopped. It never keeps the process alive on its own. */
  every(ms: number, fn: () => void): Repeating;
}

/** The real clock: Date.now and an unref'd setInterval. */
export const systemClock: Clock = {
  now: () => Date.now(),
  every(ms, fn) {
    const timer = setInterval(fn, ms);
    timer.unref();
    return { stop: () => clearInterval(timer) };
  },
};

interface ManualTimer {
  readonly ms: number;
  readonly fn: () => void;
  due: number;
  stopped: boolean;
}

/** A clock that moves only when told: `advance` runs every timer that falls due, in time order. */
export class ManualClock implements Clock {
  private timers: ManualTimer[] = [];

  constructor(private time = 0) {}

  now(): number {
    return this.time;
  }

  every(ms: number, fn: () => void): Repeating {
    if (!(ms > 0)) throw new RangeError('a repeating timer needs a positive interval');
    const timer: ManualTimer = { ms, fn, due: this.time + ms, stopped: false };
    this.timers.push(timer);
    return {
      stop: () => {
        timer.stopped = true;
        this.timers = this.timers.filter((t) => t !== timer);
      },
    };
  }

  /** Move time on by `ms`, running each timer as its due time is reached (a timer due twice runs twice). */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      let next: ManualTimer | undefined;
      for (const t of this.timers) if (!t.stopped && t.due <= end && (!next || t.due < next.due)) next = t;
      if (!next) break;
      this.time = next.due;
      next.due += next.ms;
      next.fn();
    }
    this.time = end;
  }
}
