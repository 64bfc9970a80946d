// HTTP for the registry client: each request and its whole body within a time limit and a size
// limit, network failures as RegistryErrors, and redirects followed by hand. Where a registry's
// token realm and redirects lead is the registry's say, not the user's: the controller follows
// them only to public or private addresses, never to link-local ones (cloud metadata services
// answer there), and to loopback only from a registry on loopback.
import { lookup } from 'node:dns/promises';
import net from 'node:net';

/** containerd refuses larger manifests too. */
const maxManifestBytes = 4 * 1024 * 1024;
/** Redirects followed at most, per request. */
const maxRedirects = 5;

export type RegistryErrorReason =
  | 'RegistryUnreachable'
  | 'RegistryTimeout'
  | 'Unauthorized'
  | 'AccessDenied'
  | 'RepositoryUnknown'
  | 'ManifestUnknown'
  | 'TooManyRequests'
  | 'InvalidManifest'
  | 'UnsafeAddress'
  | 'RegistryError';

export class RegistryError extends Error {
  override readonly name = 'RegistryError';

  constructor(
    readonly reason: RegistryErrorReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface Fetched {
  status: number;
  headers: Headers;
  body: Buffer;
}

/**
 * A request and its whole body, within the timeout; network failures become RegistryErrors.
 * Redirects are followed here, each checked by safeDestination; so is `url` itself when the
 * registry chose it (`chosenBy`: a token realm).
 */
export async function fetchWithin(
  url: string,
  init: RequestInit,
  opts: { timeoutMs: number; signal?: AbortSignal; chosenBy?: string },
): Promise<Fetched> {
  const { timeoutMs, signal, chosenBy } = opts;
  const timeout = AbortSignal.timeout(timeoutMs);
  const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
  const origin = new URL(url).origin;
  try {
    const registry = chosenBy ?? new URL(url).host;
    if (chosenBy) await safeDestination(url, registry);
    let res = await fetch(url, { ...init, signal: combined, redirect: 'manual' });
    for (let hops = 0; res.status >= 300 && res.status < 400 && res.headers.get('location'); hops++) {
      const next = new URL(res.headers.get('location')!, url).href;
      await res.body?.cancel();
      if (hops === maxRedirects) throw new RegistryError('RegistryError', `${origin} redirected too often`);
      await safeDestination(next, registry);
      res = await fetch(next, { ...init, signal: combined, redirect: 'manual' });
    }
    const length = Number(res.headers.get('content-length') ?? 0);
    if (length > maxManifestBytes) {
      await res.body?.cancel();
      throw new RegistryError(
        'InvalidManifest',
        `${url} answered ${length} bytes, more than a manifest may have`,
      );
    }
    const body = Buffer.from(await res.arrayBuffer());
    if (body.length > maxManifestBytes) {
      throw new RegistryError('InvalidManifest', `${url} answered more bytes than a manifest may have`);
    }
    return { status: res.status, headers: res.headers, body };
  } catch (err) {
    if (err instanceof RegistryError || signal?.aborted) throw err;
    if (timeout.aborted) {
      throw new RegistryError('RegistryTimeout', `${origin} did not answer within ${timeoutMs / 1000}s`, {
        cause: err,
      });
    }
    const cause = (err as { cause?: { message?: string; code?: string } }).cause;
    const why = cause?.message ?? (err as Error).message;
    const hint =
      url.startsWith('https:') && /SSL|TLS|EPROTO|wrong version/i.test(why)
        ? ' (a registry that serves plain HTTP must be listed in --insecure-registries)'
        : '';
    throw new RegistryError('RegistryUnreachable', `cannot reach ${origin}: ${why}${hint}`, { cause: err });
  }
}

/** Why an address must not be reached on a registry's say, or undefined when it may. */
export function unsafeAddress(ip: string, registryOnLoopback: boolean): string | undefined {
  const v4 = net.isIPv4(ip) ? ip : /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)?.[1];
  if (v4) {
    const [a, b] = v4.split('.').map(Number) as [number, number];
    if (a === 169 && b === 254) return 'link-local (where cloud metadata services answer)';
    if (a === 0) return 'unspecified';
    if (a === 127 && !registryOnLoopback) return 'loopback';
    // Alibaba Cloud's metadata service.
    if (v4 === '100.100.100.200') return 'a cloud metadata address';
    return undefined;
  }
  const lower = ip.toLowerCase();
  if (/^fe[89ab]/.test(lower)) return 'link-local';
  if (lower === '::') return 'unspecified';
  if (lower === '::1' && !registryOnLoopback) return 'loopback';
  // AWS's metadata service over IPv6.
  if (lower === 'fd00:ec2::254') return 'a cloud metadata address';
  return undefined;
}

/**
 * Refuses a destination a registry chose (a token realm, a redirect) whose host resolves to an
 * unsafe address. (The name is resolved again by the request itself: a DNS answer that changes in
 * between is not caught.)
 */
export async function safeDestination(url: string, registry: string): Promise<void> {
  const { hostname } = new URL(url);
  const host = hostname.replace(/^\[|\]$/g, '');
  const registryHost = registry.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  const onLoopback = registryHost === 'localhost' || /^127\./.test(registryHost) || registryHost === '::1';
  const addresses = net.isIP(host) ? [host] : (await lookup(host, { all: true })).map((a) => a.address);
  for (const address of addresses) {
    const why = unsafeAddress(address, onLoopback);
    if (why) {
      throw new RegistryError(
        'UnsafeAddress',
        `${registry} sent the controller to ${hostname} (${address}, ${why}): refused`,
      );
    }
  }
}
