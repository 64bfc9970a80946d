// Registry credentials for a pull, from the pull Secrets a Container or Image names, matched to
// the image the way the kubelet matches them (src/kube/dockerconfig.ts), as a CRI AuthConfig.
import { CoreV1Api } from '@kubernetes/client-node';
import { parseImageReference } from '../api/v1alpha1/index.js';
import type { KubeClient } from '../kube/client.js';
import { credentialsFor, type DockerConfig, dockerConfigFromSecret } from '../kube/dockerconfig.js';
import { isNotFound } from '../kube/errors.js';
import type { AuthConfig } from '../cri/client.js';

/** A named pull Secret is missing or unusable: the pull would fail for a reason the user must fix. */
export class PullSecretError extends Error {}

/** The first matching credentials as CRI wants them (server_address is a URL), or undefined. */
export function authFor(image: string, configs: DockerConfig[]): AuthConfig | undefined {
  const ref = parseImageReference(image);
  const credentials = credentialsFor(ref, configs)[0];
  if (!credentials) return undefined;
  const scheme = /^(localhost|127\.)/.test(ref.registry) ? 'http' : 'https';
  return { ...credentials, serverAddress: `${scheme}://${ref.registry}` };
}

/** Reads the named Secrets in `namespace` and returns the credentials that apply to `image`. */
export async function pullAuth(
  client: KubeClient,
  namespace: string,
  secretNames: string[],
  image: string,
): Promise<AuthConfig | undefined> {
  if (secretNames.length === 0) return undefined;
  const core = client.api(CoreV1Api);
  const configs: DockerConfig[] = [];
  for (const name of secretNames) {
    try {
      configs.push(dockerConfigFromSecret(await core.readNamespacedSecret({ name, namespace })));
    } catch (e) {
      if (isNotFound(e)) throw new PullSecretError(`pull secret ${namespace}/${name} does not exist`);
      if (e instanceof Error && !('code' in e)) throw new PullSecretError(e.message);
      throw e;
    }
  }
  return authFor(image, configs);
}
