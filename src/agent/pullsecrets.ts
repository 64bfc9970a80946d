// Registry credentials from kubernetes.io/dockerconfigjson Secrets, matched to an image's registry
// the way the kubelet does (docker.io and its aliases are one registry), as a CRI AuthConfig.
import { CoreV1Api } from '@kubernetes/client-node';
import { parseImageReference } from '../api/v1alpha1/index.js';
import type { KubeClient } from '../kube/client.js';
import { isNotFound } from '../kube/errors.js';
import type { AuthConfig } from './cri/client.js';

interface DockerConfigEntry {
  auth?: string;
  username?: string;
  password?: string;
}

const dockerHubAliases = [
  'docker.io',
  'index.docker.io',
  'registry-1.docker.io',
  'https://index.docker.io/v1/',
];

/** The registry host a dockerconfig key names: "https://ghcr.io/v2/" -> "ghcr.io". */
function keyHost(key: string): string {
  const host = key.replace(/^https?:\/\//, '').split('/')[0] ?? key;
  return dockerHubAliases.includes(key) || dockerHubAliases.includes(host) ? 'docker.io' : host;
}

/** Credentials for `image` in a .dockerconfigjson document, or undefined. */
export function authFromDockerConfig(dockerConfigJson: string, image: string): AuthConfig | undefined {
  const registry = parseImageReference(image).registry;
  const doc = JSON.parse(dockerConfigJson) as { auths?: Record<string, DockerConfigEntry> };
  for (const [key, entry] of Object.entries(doc.auths ?? {})) {
    if (keyHost(key) !== registry) continue;
    let { username, password } = entry;
    if ((!username || !password) && entry.auth) {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      username = decoded.slice(0, colon);
      password = decoded.slice(colon + 1);
    }
    // CRI wants a URL here (containerd matches it against the registry's host).
    const scheme = /^(localhost|127\.)/.test(registry) ? 'http' : 'https';
    return { username, password, serverAddress: `${scheme}://${registry}` };
  }
  return undefined;
}

export class MissingPullSecretError extends Error {}

/** Reads the named Secrets and returns the first credentials that match the image's registry. */
export async function pullAuth(
  client: KubeClient,
  namespace: string,
  secretNames: string[],
  image: string,
): Promise<AuthConfig | undefined> {
  const core = client.api(CoreV1Api);
  for (const name of secretNames) {
    let data: string | undefined;
    try {
      const secret = await core.readNamespacedSecret({ name, namespace });
      data = secret.data?.['.dockerconfigjson'];
    } catch (e) {
      if (isNotFound(e)) throw new MissingPullSecretError(`pull secret ${namespace}/${name} does not exist`);
      throw e;
    }
    if (!data) continue;
    const auth = authFromDockerConfig(Buffer.from(data, 'base64').toString('utf8'), image);
    if (auth) return auth;
  }
  return undefined;
}
