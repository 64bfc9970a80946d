// Registry credentials from image pull Secrets, chosen the way the kubelet chooses them: a key of
// the docker config names a registry host (glob `*` per dot-separated part, port must match) and
// optionally a repository path prefix; more specific keys are tried first; docker.io,
// index.docker.io, registry-1.docker.io and https://index.docker.io/v1/ all mean Docker Hub.
import type { V1Secret } from '@kubernetes/client-node';
import { DEFAULT_REGISTRY, type ImageReference } from '../api/v1alpha1/index.js';

/** A registry login. */
export interface Credentials {
  username: string;
  password: string;
}

export interface DockerConfigEntry {
  auth?: string;
  username?: string;
  password?: string;
}

/** The `auths` map of a docker config: registry key -> credentials. */
export type DockerConfig = Record<string, DockerConfigEntry>;

const dockerHubHosts = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/**
 * The docker config in a kubernetes.io/dockerconfigjson (or legacy kubernetes.io/dockercfg)
 * Secret; throws a message fit for a condition when the Secret holds something else.
 */
export function dockerConfigFromSecret(secret: V1Secret): DockerConfig {
  const name = `${secret.metadata?.namespace ?? ''}/${secret.metadata?.name ?? ''}`;
  const field = secret.type === 'kubernetes.io/dockercfg' ? '.dockercfg' : '.dockerconfigjson';
  if (secret.type !== 'kubernetes.io/dockerconfigjson' && secret.type !== 'kubernetes.io/dockercfg') {
    throw new Error(
      `pull secret ${name} is of type ${secret.type ?? 'Opaque'}, not kubernetes.io/dockerconfigjson`,
    );
  }
  const encoded = secret.data?.[field];
  if (!encoded) throw new Error(`pull secret ${name} has no ${field}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(encoded, 'base64').toString('utf8'));
  } catch {
    throw new Error(`pull secret ${name}: ${field} is not JSON`);
  }
  const auths = field === '.dockercfg' ? parsed : (parsed as { auths?: unknown } | null)?.auths;
  if (typeof auths !== 'object' || auths === null)
    throw new Error(`pull secret ${name}: ${field} has no auths`);
  return auths as DockerConfig;
}

interface ParsedKey {
  hostParts: string[];
  port: string;
  path: string;
}

/** "https://index.docker.io/v1/" -> docker.io; "*.example.com:5000/team" -> parts, port and path. */
function parseKey(key: string): ParsedKey {
  const withoutScheme = key.replace(/^[a-z]+:\/\//i, '');
  const slash = withoutScheme.indexOf('/');
  const hostPort = (slash < 0 ? withoutScheme : withoutScheme.slice(0, slash)).toLowerCase();
  // Docker treats /v1/ and /v2/ after the host as the host itself.
  const path = (slash < 0 ? '' : withoutScheme.slice(slash + 1))
    .replace(/^v[12](\/|$)/, '')
    .replace(/\/+$/, '');
  const colon = hostPort.lastIndexOf(':');
  const host = colon < 0 ? hostPort : hostPort.slice(0, colon);
  return {
    hostParts: (dockerHubHosts.has(host) ? DEFAULT_REGISTRY : host).split('.'),
    port: colon < 0 ? '' : hostPort.slice(colon + 1),
    path,
  };
}

function globMatches(pattern: string, value: string): boolean {
  const regex = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '[^.]*')
    .replace(/\?/g, '[^.]');
  return new RegExp(`^${regex}$`).test(value);
}

function keyMatches(key: ParsedKey, ref: ImageReference): boolean {
  const target = parseKey(ref.registry);
  return (
    key.port === target.port &&
    key.hostParts.length === target.hostParts.length &&
    key.hostParts.every((part, i) => globMatches(part, target.hostParts[i]!)) &&
    (key.path === '' || ref.path === key.path || ref.path.startsWith(`${key.path}/`))
  );
}

function credentialsOf(entry: DockerConfigEntry): Credentials | undefined {
  if (entry.username && entry.password) return { username: entry.username, password: entry.password };
  if (!entry.auth) return undefined;
  const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * Every credential in `configs` that applies to the image, most specific key first (a longer
 * path, then an exact host before a wildcard); ties keep the order of the configs.
 */
export function credentialsFor(ref: ImageReference, configs: DockerConfig[]): Credentials[] {
  const matches: { key: ParsedKey; credentials: Credentials }[] = [];
  for (const config of configs) {
    for (const [rawKey, entry] of Object.entries(config)) {
      const key = parseKey(rawKey);
      const credentials = credentialsOf(entry ?? {});
      if (credentials && keyMatches(key, ref)) matches.push({ key, credentials });
    }
  }
  const wildcards = (k: ParsedKey): number => k.hostParts.filter((p) => /[*?]/.test(p)).length;
  return matches
    .sort((a, b) => b.key.path.length - a.key.path.length || wildcards(a.key) - wildcards(b.key))
    .map((m) => m.credentials);
}
