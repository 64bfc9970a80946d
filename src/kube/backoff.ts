// Exponential backoff with jitter for reconnect loops (watches, lists, lease calls): the delay
// doubles up to a cap, and each delay is shortened by a random share so clients that failed
// together do not retry together. The cap is never exceeded.

export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  factor?: number;
  /** Share of each delay that is random: 0.5 gives delays in [d/2, d]. */
  jitter?: number;
  random?: () => number;
}

export class Backoff {
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly jitter: number;
  private readonly random: () => number;
  private current: number;

  constructor(opts: BackoffOptions = {}) {
    this.initialMs = opts.initialMs ?? 800;
    this.maxMs = opts.maxMs ?? 30_000;
    this.factor = opts.factor ?? 2;
    this.jitter = opts.jitter ?? 0.5;
    this.random = opts.random ?? Math.random;
    this.current = this.initialMs;
  }

  /** The delay before the next attempt. */
  next(): number {
    const delay = Math.min(this.current, this.maxMs);
    this.current = Math.min(this.current * this.factor, this.maxMs);
    return delay * (1 - this.jitter * this.random());
  }

  /** After a success: the next failure waits the initial delay again. */
  reset(): void {
    this.current = this.initialMs;
  }
}
