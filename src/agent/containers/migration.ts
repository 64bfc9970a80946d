// The agent's part in migrations. The controller drives a Migration through its phases; the
// agents do the runtime work and report it on the Migration's status with their own field
// manager (conditions Checkpointed, Transferred, Restored, Resumed; frozenAt, restoredAt,
// checkpointSizeBytes, checkpointSHA256). The runtime calls are the Container reconciler's
// (migration-steps.ts, one worker per key); this module answers "what is this Container's role
// in a migration" and holds the archives, the transfer and the reports.
import fs from 'node:fs';
import path from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import {
  effectiveMode,
  migrationEnded,
  restoreFromAnnotation,
  transferSecretName,
  type Container,
  type Host,
  type Migration,
} from '../../api/v1alpha1/index.js';
import type { KubeClient } from '../../kube/client.js';
import { getCondition, setCondition, type Condition, type ConditionUpdate } from '../../kube/conditions.js';
import type { CustomResourceClient } from '../../kube/customresource.js';
import type { Cache } from '../../kube/store.js';
import {
  type CheckpointSource,
  fetchCheckpoint,
  type TransferGrant,
  type TransferKey,
  transferContext,
} from '../transfer.js';

const sourcePhases = new Set(['Checkpointing', 'Transferring', 'Restoring', 'RollingBack']);

export type MigrationRole =
  | { kind: 'source'; migration: Migration }
  | { kind: 'target'; migration: Migration | undefined; name: string; held?: TargetHold };

/** A Container's status reason (and Event) when it claims to restore a Migration it is not the target of. */
export const notTargetReason = 'NotMigrationTarget';

/** Why a Container annotated to restore a Migration must not act as its target (yet, or ever). */
export interface TargetHold {
  reason: 'WaitingForCheckpoint' | typeof notTargetReason;
  message: string;
}

/**
 * Is `c` the Container the controller made for `m` on `host`? Anyone who may edit a namespace can
 * annotate a Container to restore a Migration, so the annotation only says "hold, do not start
 * from the image"; the checkpoint (the process's memory) goes only into the Container whose name
 * and UID the controller recorded in the Migration's status, on the Host it recorded.
 */
export function targetHold(m: Migration, c: Container, host: string): TargetHold | undefined {
  const s = m.status ?? {};
  const migration = `Migration ${m.metadata.name}`;
  if (!s.targetContainer || !s.targetContainerUID || !s.targetHost) {
    return { reason: 'WaitingForCheckpoint', message: `${migration} has not recorded its target yet` };
  }
  const refuse = (why: string): TargetHold => ({
    reason: notTargetReason,
    message: `not restoring the checkpoint of ${migration}: ${why}`,
  });
  if (s.targetContainer !== c.metadata.name) {
    return refuse(`its target is Container ${s.targetContainer}, not ${c.metadata.name}`);
  }
  if (s.targetContainerUID !== c.metadata.uid) {
    return refuse(
      `its target is the Container ${s.targetContainer} with UID ${s.targetContainerUID}, not this one (UID ${c.metadata.uid})`,
    );
  }
  if (s.targetHost !== host || c.spec.nodeName !== host) {
    return refuse(`its target Host is ${s.targetHost}, not ${c.spec.nodeName ?? 'unbound'}`);
  }
  return undefined;
}

/** The steps an agent takes in a migration, and the condition each one reports on the Migration. */
export const stepConditions = {
  Checkpoint: 'Checkpointed',
  Transfer: 'Transferred',
  Restore: 'Restored',
  Resume: 'Resumed',
} as const;

type AgentCondition = (typeof stepConditions)[keyof typeof stepConditions];

/** Status fields an agent reports beside its conditions: the source's, or the target's. */
type SideFields = Pick<
  NonNullable<Migration['status']>,
  'frozenAt' | 'restoredAt' | 'checkpointSizeBytes' | 'checkpointSHA256'
>;

export interface MigrationSupportOptions {
  host: string;
  fieldManager: string;
  stateDir: string;
  /** Gantry's own namespace, where the controller keeps each migration's transfer token. */
  secretNamespace: string;
}

/**
 * CRIU's options for Gantry's checkpoints. TCP connections open at the dump (a client's, a health
 * check's) would fail it: they are left out and restored closed, since the address changes with the
 * move and they could not go on anyway; connections not yet accepted are skipped.
 */
export const criuOptions = ['tcp-close', 'skip-in-flight'];

export class MigrationSupport implements CheckpointSource {
  private readonly dir: string;
  /** The CRIU configuration file the agent's containers name (runtimespec.ts criuConfigAnnotation). */
  readonly criuConfig: string;

  constructor(
    private readonly opts: MigrationSupportOptions,
    private readonly deps: {
      client: KubeClient;
      migrations: Cache<Migration>;
      migrationsApi: Pick<CustomResourceClient<Migration>, 'applyStatus'>;
      hostsApi: Pick<CustomResourceClient<Host>, 'get'>;
      /** This agent's transfer key: archives are encrypted for the target Host's. */
      transferKey: TransferKey;
    },
  ) {
    this.dir = path.join(opts.stateDir, 'checkpoints');
    fs.mkdirSync(this.dir, { recursive: true });
    this.criuConfig = path.join(opts.stateDir, 'criu.conf');
    fs.writeFileSync(this.criuConfig, criuOptions.map((o) => `${o}\n`).join(''));
  }

  /** This Container's part in a migration in progress, if any. */
  roleOf(c: Container): MigrationRole | undefined {
    const namespace = c.metadata.namespace ?? 'default';
    const restoring = c.metadata.annotations?.[restoreFromAnnotation];
    if (restoring) {
      const migration = this.deps.migrations.get(`${namespace}/${restoring}`);
      // Once the Migration has ended nothing is restored any more: a target restored before the
      // controller recorded UIDs (an upgrade) runs on as the Container it is.
      const held = migration && !migrationEnded(migration) && targetHold(migration, c, this.opts.host);
      return { kind: 'target', name: restoring, migration, ...(held ? { held } : {}) };
    }
    // A restart needs nothing of the source's agent (the controller deletes the source): it runs
    // and serves as usual until then.
    const migration = this.deps.migrations
      .listByNamespace(namespace)
      .find(
        (m) =>
          m.spec.container === c.metadata.name &&
          effectiveMode(m) === 'Checkpoint' &&
          m.status?.sourceHost === this.opts.host &&
          sourcePhases.has(m.status.phase ?? ''),
      );
    return migration ? { kind: 'source', migration } : undefined;
  }

  /** The keys of the Containers a Migration concerns, for the container reconciler's queue. */
  containerKeys(m: Migration): string[] {
    const ns = m.metadata.namespace ?? 'default';
    return [m.spec.container, m.status?.targetContainer]
      .filter((n): n is string => !!n)
      .map((n) => `${ns}/${n}`);
  }

  archivePath(m: Migration): string {
    return path.join(this.dir, `${m.metadata.uid}.tar`);
  }

  private archive(migrationUid: string): string | undefined {
    const file = path.join(this.dir, `${migrationUid}.tar`);
    return /^[0-9a-f-]+$/.test(migrationUid) && fs.existsSync(file) ? file : undefined;
  }

  async grant(migrationUid: string): Promise<TransferGrant | undefined> {
    const m = this.deps.migrations.list().find((x) => x.metadata.uid === migrationUid);
    if (!m || m.status?.sourceHost !== this.opts.host || !m.status.targetHost) return undefined;
    const token = await this.readToken(m);
    if (!token) return undefined;
    const target = await this.deps.hostsApi.get({ name: m.status.targetHost });
    return {
      token,
      archive: this.archive(migrationUid),
      recipientKey: target?.status?.transferPublicKey,
      context: transferContext(migrationUid, this.opts.host, m.status.targetHost),
    };
  }

  private async readToken(m: Migration): Promise<string | undefined> {
    const secret = await this.deps.client.api(CoreV1Api).readNamespacedSecret({
      name: transferSecretName(m.metadata.uid!),
      namespace: this.opts.secretNamespace,
    });
    const token = secret.data?.token;
    return token ? Buffer.from(token, 'base64').toString('utf8') : undefined;
  }

  /** The agent's own condition on the Migration, if it reported it. */
  reported(m: Migration, type: AgentCondition): Condition | undefined {
    return getCondition(m.status?.conditions, type);
  }

  /** Server-side apply of this agent's part of the Migration status. */
  async report(
    m: Migration,
    update: Omit<ConditionUpdate, 'observedGeneration'> & { type: AgentCondition },
    fields: SideFields = {},
  ): Promise<void> {
    // Every condition this agent owns goes in each apply: one left out would be removed.
    const types: AgentCondition[] =
      m.status?.sourceHost === this.opts.host ? ['Checkpointed', 'Resumed'] : ['Transferred', 'Restored'];
    const mine = (m.status?.conditions ?? []).filter((c) => types.includes(c.type as AgentCondition));
    const conditions = setCondition(mine, { ...update, observedGeneration: m.metadata.generation });
    await this.deps.migrationsApi.applyStatus(
      { namespace: m.metadata.namespace, name: m.metadata.name! },
      { ...this.ownFields(m), ...fields, conditions },
      { fieldManager: this.opts.fieldManager },
    );
  }

  /** Fields this agent reported before, kept in every apply (omitting them would remove them). */
  private ownFields(m: Migration): Record<string, unknown> {
    const s = m.status ?? {};
    if (s.sourceHost === this.opts.host && s.frozenAt) {
      return {
        frozenAt: s.frozenAt,
        ...(s.checkpointSizeBytes !== undefined ? { checkpointSizeBytes: s.checkpointSizeBytes } : {}),
        ...(s.checkpointSHA256 ? { checkpointSHA256: s.checkpointSHA256 } : {}),
      };
    }
    if (s.targetHost === this.opts.host && s.restoredAt) return { restoredAt: s.restoredAt };
    return {};
  }

  /**
   * Target side: fetches the archive from the source agent, no larger than the source reported,
   * no later than the Migration's deadline, and only as the source published it. Resolves with
   * its size.
   */
  async fetch(m: Migration): Promise<number> {
    const s = m.status!;
    const source = await this.deps.hostsApi.get({ name: s.sourceHost! });
    const endpoint = source?.status?.transferEndpoint;
    if (!endpoint) throw new Error(`Host ${s.sourceHost} reports no transfer endpoint`);
    const senderKey = source.status?.transferPublicKey;
    if (!senderKey)
      throw new Error(`Host ${s.sourceHost} publishes no transfer key (an older Gantry agent?)`);
    const token = await this.readToken(m);
    if (!token) throw new Error(`the transfer Secret ${transferSecretName(m.metadata.uid!)} has no token`);
    if (s.checkpointSizeBytes === undefined || !s.checkpointSHA256) {
      throw new Error('the source reported no checkpoint size or SHA-256');
    }
    const started = Date.parse(s.startedAt ?? '');
    const deadline = (Number.isFinite(started) ? started : Date.now()) + m.spec.timeoutSeconds * 1000;
    return fetchCheckpoint(
      {
        endpoint,
        migrationUid: m.metadata.uid!,
        token,
        senderKey,
        context: transferContext(m.metadata.uid!, s.sourceHost!, this.opts.host),
        sha256: s.checkpointSHA256,
        maxBytes: s.checkpointSizeBytes,
        signal: AbortSignal.timeout(Math.max(0, deadline - Date.now())),
      },
      this.deps.transferKey,
      this.archivePath(m),
    );
  }

  /** Removes archives of migrations that are over or gone. */
  cleanUp(): number {
    const live = new Map(this.deps.migrations.list().map((m) => [m.metadata.uid, m]));
    let removed = 0;
    for (const file of fs.readdirSync(this.dir)) {
      const uid = file.replace(/\.tar(\.partial)?$/, '');
      const m = live.get(uid);
      const over = !m || migrationEnded(m);
      if (over) {
        fs.rmSync(path.join(this.dir, file), { force: true });
        removed++;
      }
    }
    return removed;
  }
}
