// A checkpoint Migration's transfer token: a random secret in a Secret in the agents' namespace,
// which the target agent presents to the source agent to fetch the archive. The Secret lives in
// another namespace than its Migration, out of reach of an owner reference, so the Migration
// carries a finalizer while the token may exist: one deleted before it ended, even while the
// controller was away, still has its token removed.
import crypto from 'node:crypto';
import { transferSecretName, transferTokenFinalizer, type Migration } from '../../api/v1alpha1/index.js';
import { setFinalizer } from '../../kube/finalizers.js';
import { objectKey, splitKey } from '../../kube/keys.js';
import type { MigrationReconcilerDeps } from './steps.js';

export class TransferTokens {
  constructor(private readonly deps: Pick<MigrationReconcilerDeps, 'api' | 'secrets'>) {}

  /**
   * The finalizer first, then the Secret: no Secret exists without the finalizer that removes it.
   * Resolves with the Migration as patched (later status writes are made on its resourceVersion),
   * or undefined when it is gone.
   */
  async issue(m: Migration): Promise<Migration | undefined> {
    const live = await setFinalizer(this.deps.api, splitKey(objectKey(m)), m, transferTokenFinalizer, true);
    if (!live) return undefined;
    await this.deps.secrets.ensure(
      transferSecretName(m.metadata.uid!),
      crypto.randomBytes(32).toString('hex'),
    );
    return live;
  }

  /** For a Migration that ended or is being deleted: the Secret, then the finalizer. */
  async revoke(m: Migration): Promise<void> {
    if (!m.metadata.finalizers?.includes(transferTokenFinalizer)) return;
    await this.deps.secrets.remove(transferSecretName(m.metadata.uid!));
    await setFinalizer(this.deps.api, splitKey(objectKey(m)), m, transferTokenFinalizer, false);
  }
}
