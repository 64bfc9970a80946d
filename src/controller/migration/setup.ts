// The Migration controller in the manager: its informer, the transfer-token Secrets in Gantry's
// namespace, and the watches (a Migration, and the Containers it waits on).
import { CoreV1Api } from '@kubernetes/client-node';
import type { Migration } from '../../api/v1alpha1/index.js';
import { realClock } from '../../kube/clock.js';
import { isConflict, isNotFound } from '../../kube/errors.js';
import { watch } from '../../kube/manager.js';
import { resourceClient } from '../../kube/resources.js';
import { sharedScheduler } from '../binding.js';
import { sharedCaches } from '../caches.js';
import type { ControllerContext } from '../context.js';
import { MigrationReconciler } from './reconciler.js';

export function setupMigrationController(ctx: ControllerContext): void {
  const caches = sharedCaches(ctx, realClock);
  const api = resourceClient(ctx.client, 'Migration');
  const migrations = ctx.manager.informer<Migration>({ path: api.collectionPath() });
  const core = ctx.client.api(CoreV1Api);
  const secretNamespace = ctx.options.transferSecretNamespace ?? ctx.options.leaderElectionNamespace;
  const reconciler = new MigrationReconciler({
    migrations: migrations.cache,
    containers: caches.containers.cache,
    hosts: caches.hosts.cache,
    api,
    containersApi: resourceClient(ctx.client, 'Container'),
    recorder: ctx.recorder,
    placement: sharedScheduler(ctx),
    secrets: {
      ensure: async (name, token) => {
        try {
          await core.createNamespacedSecret({
            namespace: secretNamespace,
            body: {
              metadata: { name, labels: { 'app.kubernetes.io/part-of': 'gantry' } },
              stringData: { token },
            },
          });
        } catch (e) {
          if (!isConflict(e)) throw e;
        }
      },
      remove: async (name) => {
        await core.deleteNamespacedSecret({ namespace: secretNamespace, name }).catch((e: unknown) => {
          if (!isNotFound(e)) throw e;
        });
      },
    },
  });
  ctx.manager.controller({
    name: 'migration',
    kind: 'Migration',
    reconciler,
    workers: 4,
    watches: [
      watch(migrations),
      // A migration waits on its Containers (bound, running, gone): their changes wake it.
      watch(caches.containers, (c) => reconciler.migrationsOf(c)),
    ],
  });
}
