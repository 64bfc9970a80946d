// Runtime work that can take long runs beside the reconciler's workers, not in them: a graceful
// stop lasts until the process exits, up to its grace period (one that ignores SIGTERM holds it
// for all of it), and a checkpoint fetch as long as the archive takes to arrive. Held in a worker,
// a dozen such stops kept every other Container on the host waiting (measured: 12 replicas with a
// 30 s grace took 62 s to scale to 0, and nothing started meanwhile). The reconcile starts the
// call and returns; the Container is queued again when it ends, and its next reconcile takes the
// result.

type Call<T> = 'running' | { result: T } | { failed: unknown };

export class BackgroundCalls<T> {
  private readonly calls = new Map<string, Call<T>>();

  constructor(private readonly enqueue: (key: string) => void) {}

  /**
   * Where the call `id` stands: undefined when none was started (or its outcome was taken),
   * 'running', or its result, given once. The error of a failed call is thrown, once, so the
   * reconcile fails and is retried with back-off.
   */
  poll(id: string): 'running' | { result: T } | undefined {
    const call = this.calls.get(id);
    if (call === undefined || call === 'running') return call;
    this.calls.delete(id);
    if ('failed' in call) throw call.failed;
    return call;
  }

  /** Starts `work` as the call `id` of the Container `key`, which is queued when it ends. */
  start(id: string, key: string, work: () => Promise<T>): void {
    this.calls.set(id, 'running');
    void work()
      .then(
        (result) => void this.calls.set(id, { result }),
        (failed: unknown) => void this.calls.set(id, { failed }),
      )
      .finally(() => this.enqueue(key));
  }
}
