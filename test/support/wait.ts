// Polling with a deadline: tests wait for the system to converge, never for a fixed time.
// Only for waiting: an invariant ("never more than N at once") is checked on recorded facts
// (test/support/watch.ts, test/support/runtime.ts), never by polling, which can miss it.
import { setTimeout as sleep } from 'node:timers/promises';

export interface EventuallyOptions {
  /** Default 60 s. */
  timeoutMs?: number;
  /** Pause between calls; default 250 ms. */
  intervalMs?: number;
}

/**
 * Calls `probe` until it returns something other than undefined/false and returns that. A probe
 * that throws is called again. At the deadline it fails with `what`, how long it waited, and the
 * last value or error seen.
 */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  opts: EventuallyOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      const seen = last instanceof Error ? `last error: ${last.message}` : `last: ${JSON.stringify(last)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${seen}`);
    }
    await sleep(opts.intervalMs ?? 250);
  }
}
