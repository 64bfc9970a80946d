// Self-fencing, opt-in (--fence-after-seconds): a host cut off from the apiserver stops its Workload
// replicas before the controller replaces them elsewhere (after its --host-lost-grace), so a
// partition never runs a replica twice. Bare Containers run on: nothing replaces them.
//
// The price is availability: if the apiserver itself is down for that long, every host stops its
// Workload replicas, and nothing runs them until it is back (the controller replaces nothing when
// no host renews). Choose it when two copies are worse than none for a while.
//
// The clock starts when a renewal that succeeded was sent: the controller cannot have seen it
// earlier, so it cannot count the host lost before fence-after has passed here.
import { sleep, type Clock } from '../kube/clock.js';

export class Fence {
  private lastRenewal: number;
  private isUp = false;
  private readonly listeners: ((up: boolean) => void)[] = [];

  /** `afterMs` 0: never fences. */
  constructor(
    private readonly afterMs: number,
    private readonly clock: Clock,
  ) {
    this.lastRenewal = clock.now();
  }

  /** True while the host has had no heartbeat renewal for longer than fence-after. */
  get up(): boolean {
    return this.isUp;
  }

  /** A heartbeat renewal sent at `sentAt` succeeded. */
  renewed(sentAt: number): void {
    this.lastRenewal = Math.max(this.lastRenewal, sentAt);
    this.check();
  }

  /** Called with the new state whenever the fence goes up or down. */
  onChange(listener: (up: boolean) => void): void {
    this.listeners.push(listener);
  }

  check(): void {
    const up = this.afterMs > 0 && this.clock.now() - this.lastRenewal > this.afterMs;
    if (up === this.isUp) return;
    this.isUp = up;
    for (const listener of this.listeners) listener(up);
  }

  /** Checks twice a second: a renewal stuck in a dead connection must not hold the fence down. */
  async run(signal: AbortSignal): Promise<void> {
    if (this.afterMs <= 0) return;
    while (!signal.aborted) {
      this.check();
      await sleep(this.clock, 500, signal);
    }
  }
}
