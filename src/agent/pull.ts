// Pulls images through CRI for containers and Image objects alike: one pull per reference at a
// time (concurrent callers share it), at most `concurrency` pulls at once, failures classified
// into reasons a user can act on and retried only after a growing back-off.
import { type AuthConfig, type CriClient, CriError } from '../cri/client.js';
import { imagePullBytes, imagePullDuration } from './metrics.js';

export type PullPolicy = 'Always' | 'IfNotPresent' | 'Never';

/** A failed pull, with a CamelCase reason (ImageNotFound, RegistryUnavailable, ...). */
export class PullError extends Error {
  constructor(
    readonly reason: string,
    message: string,
    /** When the next attempt is allowed (back-off). */
    readonly retryAt: number,
  ) {
    super(message);
  }
}

/** Sorts a runtime's pull error into a reason; the message stays the runtime's own. */
export function classifyPullError(message: string): string {
  const m = message.toLowerCase();
  if (/unauthorized|authentication required|401|403|denied/.test(m)) return 'ImagePullUnauthorized';
  if (/not found|manifest unknown|name unknown/.test(m)) return 'ImageNotFound';
  if (/connection refused|no such host|i\/o timeout|dial tcp|network is unreachable|tls/.test(m)) {
    return 'RegistryUnavailable';
  }
  return 'ErrImagePull';
}

interface Failure {
  reason: string;
  message: string;
  attempts: number;
  retryAt: number;
}

export interface PullerOptions {
  concurrency: number;
  /** First retry delay after a failed pull; doubles per failure up to maxBackoffMs. */
  initialBackoffMs: number;
  maxBackoffMs: number;
}

/**
 * Pulls share in-flight work and failure back-off only with pulls of the same reference made with
 * the same credentials: a pull without credentials must not ride on, or be blocked by, one with.
 */
function pullKey(ref: string, auth?: AuthConfig): string {
  return auth
    ? `${ref}\u0000${auth.serverAddress ?? ''}\u0000${auth.username ?? ''}\u0000${auth.password ?? ''}`
    : ref;
}

export class ImagePuller {
  private readonly inFlight = new Map<string, Promise<string>>();
  /** The last pull queued per reference (see pull()). */
  private readonly byRef = new Map<string, Promise<void>>();
  private readonly failures = new Map<string, Failure>();
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly cri: CriClient,
    private readonly opts: PullerOptions,
  ) {}

  /** The image's ID when the runtime has it, else undefined. */
  async present(ref: string): Promise<string | undefined> {
    const { image } = await this.cri.imageStatus({ image: { image: ref } });
    return image?.id;
  }

  /**
   * Makes sure the runtime holds `ref` according to the pull policy; resolves with the image ID.
   * Throws PullError (with the back-off's retry time) when the pull fails or is not allowed yet.
   */
  async ensure(ref: string, policy: PullPolicy, auth?: AuthConfig): Promise<string> {
    if (policy !== 'Always') {
      const id = await this.present(ref);
      if (id) return id;
      if (policy === 'Never') {
        throw new PullError(
          'ErrImageNeverPull',
          `image ${ref} is not present on the host and imagePullPolicy is Never`,
          Date.now() + this.opts.maxBackoffMs,
        );
      }
    }
    const key = pullKey(ref, auth);
    const failed = this.failures.get(key);
    if (failed && Date.now() < failed.retryAt) {
      throw new PullError(failed.reason, `back-off pulling ${ref}: ${failed.message}`, failed.retryAt);
    }
    let pull = this.inFlight.get(key);
    if (!pull) {
      pull = this.pull(key, ref, auth).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pull);
    }
    return pull;
  }

  private async pull(key: string, ref: string, auth?: AuthConfig): Promise<string> {
    // containerd merges concurrent pulls of one reference, whatever their credentials: a pull with
    // wrong credentials would succeed on the back of one with good ones. One at a time per reference.
    const before = this.byRef.get(ref) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    this.byRef.set(ref, mine);
    await before;
    try {
      return await this.pullNow(key, ref, auth);
    } finally {
      if (this.byRef.get(ref) === mine) this.byRef.delete(ref);
      release();
    }
  }

  private async pullNow(key: string, ref: string, auth?: AuthConfig): Promise<string> {
    await this.acquire();
    const started = performance.now();
    try {
      const { imageRef } = await this.cri.pullImage({ image: { image: ref }, ...(auth ? { auth } : {}) });
      imagePullDuration.observe({ result: 'success' }, (performance.now() - started) / 1000);
      this.failures.delete(key);
      const { image } = await this.cri.imageStatus({ image: { image: ref } });
      if (image) imagePullBytes.inc(Number(image.size));
      return imageRef;
    } catch (e) {
      imagePullDuration.observe({ result: 'error' }, (performance.now() - started) / 1000);
      const message = e instanceof CriError ? e.details : (e as Error).message;
      const attempts = (this.failures.get(key)?.attempts ?? 0) + 1;
      const delay = Math.min(this.opts.maxBackoffMs, this.opts.initialBackoffMs * 2 ** (attempts - 1));
      const failure = { reason: classifyPullError(message), message, attempts, retryAt: Date.now() + delay };
      this.failures.set(key, failure);
      throw new PullError(failure.reason, message, failure.retryAt);
    } finally {
      this.release();
    }
  }

  private async acquire(): Promise<void> {
    if (this.running < this.opts.concurrency) {
      this.running++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }
}
