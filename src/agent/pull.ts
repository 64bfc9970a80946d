// Pulls images through CRI for containers and Image objects alike: one pull per reference at a
// time (concurrent callers share it), at most `concurrency` pulls at once, failures classified
// into reasons a user can act on and retried only after a growing back-off.
//
// An image on the host is not everyone's to run: one pulled with a namespace's registry
// credentials is run with other credentials (or none) only after the registry said yes to those
// too, by a pull with them (the kubelet's "ensure secret pulled images" rule; the layers are
// there already, so it costs a manifest request). The credentials each image was pulled with are
// recorded per image and repository (the same image may be public in one repository and private
// in another), as digests, in a file under the agent's state directory, so the record outlives the
// agent. An image that the agent did not pull (preloaded, or the kubelet's) is not checked.
import crypto from 'node:crypto';
import fs from 'node:fs';
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
  /** The file that records which credentials pulled each image (see above). */
  recordFile: string;
}

/** A digest of the credentials a pull was made with; 'anonymous' for none. Never the secret itself. */
function credentialsDigest(auth?: AuthConfig): string {
  if (!auth) return 'anonymous';
  const { serverAddress, username, password, auth: basic, identityToken, registryToken } = auth;
  const material = JSON.stringify([serverAddress, username, password, basic, identityToken, registryToken]);
  return crypto.createHash('sha256').update(material).digest('hex');
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
  /** "<image ID> <repository>" -> digests of the credentials it was pulled (or verified) with. */
  private readonly pulledWith: Map<string, Set<string>>;

  constructor(
    private readonly cri: CriClient,
    private readonly opts: PullerOptions,
  ) {
    this.pulledWith = readRecord(opts.recordFile);
  }

  /** The image's ID when the runtime has it, else undefined. */
  async present(ref: string): Promise<string | undefined> {
    const { image } = await this.cri.imageStatus({ image: { image: ref } });
    return image?.id;
  }

  /** Image `imageId`, present as `ref`, is anyone's: pulled without credentials, or not by this agent. */
  openToAll(imageId: string, ref: string): boolean {
    const record = this.pulledWith.get(recordKey(imageId, ref));
    return !record || record.has('anonymous');
  }

  /** Image `imageId`, present as `ref`, may run with `auth` (undefined: none) without asking the registry. */
  usable(imageId: string, ref: string, auth: AuthConfig | undefined): boolean {
    const record = this.pulledWith.get(recordKey(imageId, ref));
    return !record || record.has('anonymous') || record.has(credentialsDigest(auth));
  }

  /**
   * Makes sure the runtime holds `ref` according to the pull policy; resolves with the image ID.
   * Throws PullError (with the back-off's retry time) when the pull fails or is not allowed yet.
   */
  async ensure(ref: string, policy: PullPolicy, auth?: AuthConfig): Promise<string> {
    if (policy !== 'Always') {
      const id = await this.present(ref);
      // Present but pulled with other credentials: these are checked by a pull (above).
      if (id && this.usable(id, ref, auth)) return id;
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
      this.record(recordKey(imageRef, ref), credentialsDigest(auth));
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
  private record(key: string, credentials: string): void {
    const record = this.pulledWith.get(key) ?? new Set<string>();
    if (record.has(credentials)) return;
    record.add(credentials);
    this.pulledWith.set(key, record);
    const json = Object.fromEntries([...this.pulledWith].map(([k, creds]) => [k, [...creds]]));
    // Written whole, then renamed: a crash never leaves half a record.
    fs.writeFileSync(`${this.opts.recordFile}.tmp`, JSON.stringify(json));
    fs.renameSync(`${this.opts.recordFile}.tmp`, this.opts.recordFile);
  }
}

/** The record's key: the image and the repository it was named by (the reference less tag and digest). */
function recordKey(imageId: string, ref: string): string {
  const named = ref.split('@')[0]!;
  const tag = named.lastIndexOf(':');
  return `${imageId} ${tag > named.lastIndexOf('/') ? named.slice(0, tag) : named}`;
}

function readRecord(file: string): Map<string, Set<string>> {
  let json: Record<string, string[]>;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, string[]>;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw new Error(`the record of pulled images ${file} cannot be read: ${String(e)}`, { cause: e });
  }
  return new Map(Object.entries(json).map(([id, creds]) => [id, new Set(creds)]));
}
