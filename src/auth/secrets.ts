/**
 * The secrets behind sealed keys and HS* tokens: the current one, and optionally a rotated-out one that is still
 * accepted until a date, so keys and tokens issued before a rotation keep working for a while.
 */
import type { HeraldConfig } from '../config.js';

export interface ActiveSecret {
  readonly secret: string;
  /** Milliseconds since the epoch after which this secret is refused; undefined for the current secret. */
  readonly until?: number;
}

export class SecretRing {
  private readonly current: ActiveSecret | undefined;
  private readonly previous: ActiveSecret | undefined;

  constructor(current: string, previous?: { secret: string; until: number }) {
    this.current = current === '' ? undefined : { secret: current };
    this.previous = previous && previous.secret !== '' ? previous : undefined;
  }

  static fromConfig(config: Pick<HeraldConfig, 'secret' | 'previousSecret' | 'previousSecretUntil'>): SecretRing {
    const until = Date.parse(config.previousSecretUntil);
    return new SecretRing(
      config.secret,
      config.previousSecret !== '' && !Number.isNaN(until) ? { secret: config.previousSecret, until } : undefined,
    );
  }

  get configured(): boolean {
    return this.current !== undefined;
  }

  /** The secret new keys and tokens are made with. */
  get signing(): string | undefined {
    return this.current?.secret;
  }

  /** Secrets accepted at `now`, the current one first. */
  accepted(now = Date.now()): ActiveSecret[] {
    const out: ActiveSecret[] = [];
    if (this.current) out.push(this.current);
    if (this.previous && this.previous.until !== undefined && now < this.previous.until) out.push(this.previous);
    return out;
  }
}
