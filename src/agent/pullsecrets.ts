// Registry credentials for a pull as CRI wants them (an AuthConfig whose server_address is a URL),
// from the pull Secrets a Container or Image names (src/kube/pullsecrets.ts reads them).
import { parseImageReference } from '../api/v1alpha1/index.js';
import type { Credentials } from '../kube/dockerconfig.js';
import { pullCredentials, type SecretReader } from '../kube/pullsecrets.js';
import type { AuthConfig } from '../cri/client.js';

export interface PullAuth {
  auth?: AuthConfig;
  /** Named Secrets that were missing or unusable: shown if the registry refuses the pull. */
  problems: string[];
}

/** The first matching credentials as CRI wants them, or undefined. */
export function authFor(image: string, credentials: readonly Credentials[]): AuthConfig | undefined {
  const first = credentials[0];
  if (!first) return undefined;
  const registry = parseImageReference(image).registry;
  const scheme = /^(localhost|127\.)/.test(registry) ? 'http' : 'https';
  return { ...first, serverAddress: `${scheme}://${registry}` };
}

export async function pullAuth(
  read: SecretReader,
  namespace: string,
  secretNames: readonly string[],
  image: string,
): Promise<PullAuth> {
  if (secretNames.length === 0) return { problems: [] };
  const { credentials, problems } = await pullCredentials(read, namespace, secretNames, image);
  return { auth: authFor(image, credentials), problems };
}
