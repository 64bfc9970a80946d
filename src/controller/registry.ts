// A client for the OCI distribution API (Docker registry v2), as far as the controller needs it:
// which manifest digest a reference names, and how big the image is. Authentication follows
// Docker's: anonymous first, then what the 401 challenge asks for (Basic, or a Bearer token
// from the registry's token service). Plain HTTP is used only for registries listed as
// insecure. Every failure is a RegistryError whose CamelCase reason a condition can carry.
// Requests go through registryhttp.ts (limits, redirects, where a registry may send us).
import type { Credentials } from '../kube/dockerconfig.js';
import { createHash } from 'node:crypto';
import { formatImageReference, type ImageReference } from '../api/v1alpha1/index.js';
import { fetchWithin, RegistryError, type Fetched } from './registryhttp.js';

export { RegistryError, type RegistryErrorReason } from './registryhttp.js';

export const mediaTypes = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
} as const;

const acceptManifests = Object.values(mediaTypes).join(', ');
const indexTypes: string[] = [mediaTypes.ociIndex, mediaTypes.dockerManifestList];
/** The distribution spec's default when a token response gives no lifetime. */
const defaultTokenSeconds = 60;

export interface RegistryClientOptions {
  /** Registries (host[:port]) reached over plain HTTP; every other one over HTTPS. */
  insecureRegistries?: readonly string[];
  /** Limit for each request, its body included. Default 10 s. */
  timeoutMs?: number;
  /** GOARCH of the platform whose manifest an index is sized by. Default this machine's. */
  architecture?: string;
}

export interface ManifestInfo {
  /** sha256:... of the manifest (or index) the reference names. */
  digest: string;
  mediaType: string;
  /** Config plus layers of the linux/<architecture> image; undefined when no manifest fits. */
  sizeBytes?: number;
}

interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string };
}

interface ManifestDocument {
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

const nodeToGoArch: Record<string, string> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ia32: '386',
  ppc64: 'ppc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
  loong64: 'loong64',
};

export class RegistryClient {
  private readonly insecure: Set<string>;
  private readonly timeoutMs: number;
  private readonly architecture: string;
  /** Authorization header values by registry, repository and user, with their expiry. */
  private readonly authorizations = new Map<string, { header: string; expiresAt: number }>();

  constructor(opts: RegistryClientOptions = {}) {
    this.insecure = new Set(opts.insecureRegistries ?? []);
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.architecture = opts.architecture ?? nodeToGoArch[process.arch] ?? process.arch;
  }

  /**
   * The digest the reference names, from a HEAD request (which Docker Hub does not count
   * against pull limits); falls back to inspect() when the registry sends no digest header.
   * Each set of credentials is tried in turn; none means anonymous.
   */
  async digest(ref: ImageReference, credentials: Credentials[] = [], signal?: AbortSignal): Promise<string> {
    return this.withEach(credentials, async (creds) => {
      const res = await this.manifestRequest('HEAD', ref, reference(ref), creds, signal);
      const digest = res.headers.get('docker-content-digest');
      if (digest) return digest;
      return (await this.inspectWith(ref, creds, signal)).digest;
    });
  }

  /** The manifest's digest and the image's size (one or two GETs). */
  async inspect(
    ref: ImageReference,
    credentials: Credentials[] = [],
    signal?: AbortSignal,
  ): Promise<ManifestInfo> {
    return this.withEach(credentials, (creds) => this.inspectWith(ref, creds, signal));
  }

  private async inspectWith(
    ref: ImageReference,
    creds: Credentials | undefined,
    signal: AbortSignal | undefined,
  ): Promise<ManifestInfo> {
    const top = await this.getManifest(ref, reference(ref), creds, signal);
    if (!indexTypes.includes(top.mediaType) && !top.document.manifests) {
      return { digest: top.digest, mediaType: top.mediaType, sizeBytes: imageSize(top.document, ref) };
    }
    const chosen = (top.document.manifests ?? []).find(
      (m) => m.platform?.os === 'linux' && m.platform.architecture === this.architecture,
    );
    if (!chosen) return { digest: top.digest, mediaType: top.mediaType };
    const child = await this.getManifest(ref, chosen.digest, creds, signal);
    return { digest: top.digest, mediaType: top.mediaType, sizeBytes: imageSize(child.document, ref) };
  }

  /** Tries each set of credentials until one is accepted; the last refusal is thrown. */
  private async withEach<T>(
    credentials: Credentials[],
    attempt: (creds: Credentials | undefined) => Promise<T>,
  ): Promise<T> {
    let refused: unknown;
    for (const creds of credentials.length > 0 ? credentials : [undefined]) {
      try {
        return await attempt(creds);
      } catch (err) {
        if (!(err instanceof RegistryError) || !['Unauthorized', 'AccessDenied'].includes(err.reason))
          throw err;
        refused = err;
      }
    }
    throw refused;
  }

  private async getManifest(
    ref: ImageReference,
    digestOrTag: string,
    creds: Credentials | undefined,
    signal: AbortSignal | undefined,
  ): Promise<{ digest: string; mediaType: string; document: ManifestDocument }> {
    const res = await this.manifestRequest('GET', ref, digestOrTag, creds, signal);
    const computed = `sha256:${createHash('sha256').update(res.body).digest('hex')}`;
    const named = digestOrTag.startsWith('sha256:') ? digestOrTag : undefined;
    const digest = res.headers.get('docker-content-digest') ?? computed;
    for (const expected of [named, digest]) {
      if (expected?.startsWith('sha256:') && expected !== computed) {
        throw new RegistryError(
          'InvalidManifest',
          `the manifest of ${formatImageReference(ref)} does not match its digest ${expected} (got ${computed})`,
        );
      }
    }
    let document: ManifestDocument;
    try {
      document = JSON.parse(res.body.toString('utf8')) as ManifestDocument;
    } catch {
      throw new RegistryError('InvalidManifest', `the manifest of ${formatImageReference(ref)} is not JSON`);
    }
    const mediaType = res.headers.get('content-type')?.split(';')[0]?.trim() || document.mediaType || '';
    return { digest, mediaType, document };
  }

  /** One manifest request, authenticating once if the registry answers 401. */
  private async manifestRequest(
    method: 'GET' | 'HEAD',
    ref: ImageReference,
    digestOrTag: string,
    creds: Credentials | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Fetched> {
    const url = `${this.baseURL(ref.registry)}/v2/${ref.path}/manifests/${digestOrTag}`;
    const cacheKey = [ref.registry, ref.path, creds?.username ?? ''].join('\n');
    const send = (authorization?: string): Promise<Fetched> =>
      fetchWithin(
        url,
        { method, headers: { accept: acceptManifests, ...(authorization && { authorization }) } },
        { timeoutMs: this.timeoutMs, signal },
      );
    const cached = this.authorizations.get(cacheKey);
    let res = await send(cached && cached.expiresAt > Date.now() ? cached.header : undefined);
    if (res.status === 401) {
      const auth = await this.authorize(res.headers.get('www-authenticate'), ref, creds, signal);
      for (const [key, { expiresAt }] of this.authorizations)
        if (expiresAt <= Date.now()) this.authorizations.delete(key);
      this.authorizations.set(cacheKey, auth);
      res = await send(auth.header);
    }
    if (res.status >= 200 && res.status < 300) return res;
    throw statusError(res, ref, creds !== undefined);
  }

  /** Answers a 401's challenge with an Authorization header value. */
  private async authorize(
    header: string | null,
    ref: ImageReference,
    creds: Credentials | undefined,
    signal: AbortSignal | undefined,
  ): Promise<{ header: string; expiresAt: number }> {
    const challenge = parseChallenge(header ?? '');
    const image = formatImageReference(ref);
    if (challenge?.scheme === 'basic') {
      if (!creds)
        throw new RegistryError(
          'Unauthorized',
          `${image}: the registry requires credentials (add a pull secret)`,
        );
      return { header: basic(creds), expiresAt: Infinity };
    }
    if (challenge?.scheme !== 'bearer' || !challenge.params.realm) {
      throw new RegistryError(
        'Unauthorized',
        `${image}: the registry answered 401 without a usable challenge`,
      );
    }
    let realm: URL;
    try {
      realm = new URL(challenge.params.realm);
    } catch {
      throw new RegistryError(
        'RegistryError',
        `${image}: the registry's token realm "${challenge.params.realm}" is not a URL`,
      );
    }
    if (challenge.params.service) realm.searchParams.set('service', challenge.params.service);
    realm.searchParams.set('scope', challenge.params.scope ?? `repository:${ref.path}:pull`);
    const res = await fetchWithin(
      realm.href,
      { method: 'GET', headers: creds ? { authorization: basic(creds) } : {} },
      { timeoutMs: this.timeoutMs, signal, chosenBy: ref.registry },
    );
    if (res.status === 401 || res.status === 403) {
      throw new RegistryError(
        'Unauthorized',
        creds
          ? `${image}: the token service ${realm.origin} rejected the credentials of ${creds.username}`
          : `${image}: the token service ${realm.origin} requires credentials (add a pull secret)`,
      );
    }
    if (res.status < 200 || res.status >= 300) {
      throw new RegistryError(
        'RegistryError',
        `${image}: the token service ${realm.origin} answered HTTP ${res.status}`,
      );
    }
    const answer = parseJSON(res.body) as { token?: string; access_token?: string; expires_in?: number };
    const token = answer?.token ?? answer?.access_token;
    if (!token)
      throw new RegistryError('RegistryError', `${image}: the token service ${realm.origin} sent no token`);
    const seconds = Math.max(answer.expires_in ?? defaultTokenSeconds, defaultTokenSeconds);
    // Renew a little early, so a token never expires between our check and the registry's.
    return { header: `Bearer ${token}`, expiresAt: Date.now() + (seconds - 10) * 1000 };
  }

  private baseURL(registry: string): string {
    if (this.insecure.has(registry)) return `http://${registry}`;
    // docker.io is a name; the registry itself answers at registry-1.docker.io.
    return `https://${registry === 'docker.io' ? 'registry-1.docker.io' : registry}`;
  }
}

function reference(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? 'latest';
}

function basic(creds: Credentials): string {
  return `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
}

function parseJSON(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** `Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull"` */
export function parseChallenge(header: string): Challenge | undefined {
  const match = /^\s*(\S+)\s*(.*)$/.exec(header);
  if (!match) return undefined;
  const params: Record<string, string> = {};
  for (const [, key, quoted, bare] of match[2]!.matchAll(
    /([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g,
  )) {
    params[key!.toLowerCase()] = quoted !== undefined ? quoted.replace(/\\(.)/g, '$1') : bare!;
  }
  return { scheme: match[1]!.toLowerCase(), params };
}

/** Config plus layers of an image manifest. */
function imageSize(doc: ManifestDocument, ref: ImageReference): number {
  if (!doc.config || !Array.isArray(doc.layers)) {
    throw new RegistryError('InvalidManifest', `${formatImageReference(ref)} is not an image manifest`);
  }
  return [doc.config, ...doc.layers].reduce((sum, d) => sum + (Number.isFinite(d.size) ? d.size : 0), 0);
}

/** The registry's errors body: {"errors":[{"code":"MANIFEST_UNKNOWN","message":"..."}]}. */
function registryErrors(body: Buffer): { code?: string; message?: string }[] {
  const parsed = parseJSON(body) as { errors?: { code?: string; message?: string }[] } | undefined;
  return Array.isArray(parsed?.errors) ? parsed.errors : [];
}

function statusError(res: Fetched, ref: ImageReference, withCredentials: boolean): RegistryError {
  const image = formatImageReference(ref);
  const errors = registryErrors(res.body);
  const detail = errors
    .map((e) => e.message ?? e.code)
    .filter(Boolean)
    .join('; ');
  const suffix = detail ? ` (${detail})` : '';
  switch (res.status) {
    case 401:
      return new RegistryError(
        'Unauthorized',
        withCredentials
          ? `${image}: the registry rejected the credentials${suffix}`
          : `${image}: the registry requires credentials (add a pull secret)${suffix}`,
      );
    case 403:
      return new RegistryError('AccessDenied', `${image}: access denied${suffix}`);
    case 404:
      return errors.some((e) => e.code === 'NAME_UNKNOWN')
        ? new RegistryError(
            'RepositoryUnknown',
            `${image}: the repository ${ref.path} does not exist${suffix}`,
          )
        : new RegistryError('ManifestUnknown', `${image}: no such tag or digest in the registry${suffix}`);
    case 429:
      return new RegistryError('TooManyRequests', `${image}: the registry is rate limiting us${suffix}`);
    default:
      return new RegistryError(
        'RegistryError',
        `${image}: the registry answered HTTP ${res.status}${suffix}`,
      );
  }
}
