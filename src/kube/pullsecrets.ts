// Reading the pull Secrets a Container or Image names: the one way the controller (resolving tags)
// and the agents (pulling) turn Secret names into registry credentials. As the kubelet does, a
// missing or malformed Secret does not stop the pull: it is skipped and reported as a problem, which
// the caller shows when the registry then refuses.
import { CoreV1Api, type V1Secret } from '@kubernetes/client-node';
import { parseImageReference } from '../api/v1alpha1/index.js';
import type { KubeClient } from './client.js';
import {
  credentialsFor,
  type Credentials,
  type DockerConfig,
  dockerConfigFromSecret,
} from './dockerconfig.js';
import { isNotFound } from './errors.js';

/** Reads one Secret; undefined when it does not exist. */
export type SecretReader = (namespace: string, name: string) => Promise<V1Secret | undefined>;

export function secretReader(client: KubeClient): SecretReader {
  const core = client.api(CoreV1Api);
  return async (namespace, name) => {
    try {
      return await core.readNamespacedSecret({ namespace, name });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  };
}

export interface PullCredentials {
  /** The credentials that apply to the image, most specific first. */
  credentials: Credentials[];
  /** Named Secrets that were missing or unusable, in words a user can act on. */
  problems: string[];
}

export async function pullCredentials(
  read: SecretReader,
  namespace: string,
  secretNames: readonly string[],
  image: string,
): Promise<PullCredentials> {
  const configs: DockerConfig[] = [];
  const problems: string[] = [];
  for (const name of secretNames) {
    const secret = await read(namespace, name);
    if (!secret) {
      problems.push(`pull secret ${namespace}/${name} does not exist`);
      continue;
    }
    try {
      configs.push(dockerConfigFromSecret(secret));
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  return { credentials: credentialsFor(parseImageReference(image), configs), problems };
}
