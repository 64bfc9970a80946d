// A benchmark's namespace goes, and with it what was made in it, before the next measurement.
import type { CoreV1Api } from '@kubernetes/client-node';
import { isNotFound } from '../../src/kube/errors.js';
import { waitFor } from '../../src/localcluster/proc.js';

/** Deletes the namespace (already gone is fine) and waits until the apiserver no longer has it. */
export async function deleteNamespace(core: CoreV1Api, name: string, timeoutMs = 300_000): Promise<void> {
  await core.deleteNamespace({ name }).catch((err: unknown) => {
    if (!isNotFound(err)) throw err;
  });
  await waitFor(
    `namespace ${name} to go`,
    () =>
      core.readNamespace({ name }).then(
        () => false,
        (err: unknown) => isNotFound(err),
      ),
    { timeoutMs, intervalMs: 500 },
  );
}
