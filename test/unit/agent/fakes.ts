import assert from 'node:assert/strict';
// What the Container reconciler's unit tests share: the simulated runtime with a few controls
// (make a process exit, fail or record a call), an apiserver that records the writes and applies
// them to the cache, an event recorder that keeps what it is told, and an agent wired from them.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import type { EventsV1Event, KubernetesObject } from '@kubernetes/client-node';
import type { Container, ContainerStatus, Host, Migration } from '../../../src/api/v1alpha1/index.js';
import { ContainerReconciler } from '../../../src/agent/containers/reconciler.js';
import { HealthMonitor } from '../../../src/agent/health.js';
import { MigrationSupport } from '../../../src/agent/containers/migration.js';
import { ImagePuller } from '../../../src/agent/pull.js';
import { TransferKey } from '../../../src/agent/transfer.js';
import type { BackoffSettings } from '../../../src/agent/restart.js';
import { labels } from '../../../src/agent/runtimespec.js';
import type { AgentRuntime, CriClient } from '../../../src/cri/client.js';
import type { KubeClient } from '../../../src/kube/client.js';
import type { CustomResourceClient } from '../../../src/kube/customresource.js';
import { EventRecorder, type EventType } from '../../../src/kube/events.js';
import { joinKey, type ObjectName } from '../../../src/kube/keys.js';
import { Store } from '../../../src/kube/store.js';
import { SimulatedRuntime } from '../../../bench/support/simulated-runtime.js';
import { ctx, log } from '../controller/fakes.js';

export const ns = 'ns';
export const host = 'h1';

const ms = (n: number): bigint => BigInt(n) * 1_000_000n;

const stateDirs: string[] = [];
after(() => {
  for (const dir of stateDirs) fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * The simulated runtime, plus: a process that exits with a code at a given time, a checkpoint
 * that writes its archive, calls made to fail, and the stop and checkpoint calls made, in order.
 */
export class TestRuntime extends SimulatedRuntime {
  readonly calls: { method: string; id: string; timeout?: number; location?: string }[] = [];
  /** Calls that fail, with this error, until removed. */
  readonly failing = new Map<'CheckpointContainer' | 'CreateContainer', Error>();
  private readonly exits = new Map<string, { exitCode: number; at: number }>();

  /** The process of `containerId` exited with `exitCode`, `agoMs` ago, right after it started. */
  async processExited(containerId: string, exitCode: number, agoMs = 0): Promise<void> {
    await super.stopContainer({ containerId });
    this.exits.set(containerId, { exitCode, at: Date.now() - agoMs });
  }

  override async containerStatus(req: { containerId: string }) {
    const r = await super.containerStatus(req);
    const exit = this.exits.get(req.containerId);
    if (!exit) return r;
    const status = {
      ...r.status,
      exitCode: exit.exitCode,
      reason: exit.exitCode === 0 ? 'Completed' : 'Error',
      startedAt: ms(exit.at),
      finishedAt: ms(exit.at),
    };
    return { ...r, status };
  }

  override async stopContainer(req: { containerId: string; timeout?: number }) {
    this.calls.push({ method: 'StopContainer', id: req.containerId, timeout: req.timeout });
    await super.stopContainer(req);
  }

  override async removePodSandbox(req: { podSandboxId: string }) {
    this.calls.push({ method: 'RemovePodSandbox', id: req.podSandboxId });
    await super.removePodSandbox(req);
  }

  override async checkpointContainer(req?: { containerId: string; location: string }): Promise<void> {
    this.calls.push({ method: 'CheckpointContainer', id: req!.containerId, location: req!.location });
    const error = this.failing.get('CheckpointContainer');
    if (error) throw error;
    fs.writeFileSync(req!.location, 'pretend this is a CRIU checkpoint archive\n');
  }

  override async createContainer(req: Parameters<SimulatedRuntime['createContainer']>[0]) {
    const error = this.failing.get('CreateContainer');
    if (error) throw error;
    return super.createContainer(req);
  }

  /** What the runtime holds for one Container UID. */
  async held(uid: string) {
    const selector = { labelSelector: { [labels.uid]: uid } };
    const { items: sandboxes } = await this.listPodSandbox({ filter: selector });
    const { containers } = await this.listContainers({ filter: selector });
    return { sandboxes, containers };
  }
}

/** Keeps every event it is asked to record, as "Type Reason: note". */
export class RecordingRecorder extends EventRecorder {
  readonly events: string[] = [];

  constructor() {
    const nowhere = async () => ({}) as EventsV1Event;
    super({
      api: { createNamespacedEvent: nowhere, patchNamespacedEvent: nowhere },
      reportingController: 'test',
      reportingInstance: 'test',
      log,
    });
  }

  override event(
    _regarding: KubernetesObject,
    type: EventType,
    reason: string,
    _action: string,
    note: string,
  ) {
    this.events.push(`${type} ${reason}: ${note}`);
  }

  reasons(): string[] {
    return this.events.map((e) => e.slice(0, e.indexOf(':')));
  }
}

/** The Container API: records status and finalizer writes and applies them to the cache at once. */
export class FakeContainersApi implements Pick<
  CustomResourceClient<Container>,
  'get' | 'mergePatch' | 'applyStatus'
> {
  readonly statuses: { name: string; status: Partial<ContainerStatus> }[] = [];
  readonly finalizers: { name: string; finalizers: string[] }[] = [];

  constructor(private readonly cache: Store<Container>) {}

  async get(name: ObjectName) {
    return this.cache.get(joinKey(name));
  }

  /** Merge patches of metadata.finalizers, with the apiserver's resourceVersion precondition. */
  async mergePatch(
    name: ObjectName,
    patch: { metadata?: { resourceVersion?: string; finalizers?: string[] } },
  ) {
    const live = this.cache.get(joinKey(name))!;
    const { resourceVersion, finalizers = [] } = patch.metadata ?? {};
    if (resourceVersion !== undefined && resourceVersion !== live.metadata.resourceVersion)
      throw Object.assign(new Error('conflict'), { code: 409 });
    this.finalizers.push({ name: name.name, finalizers });
    const next = { ...live, metadata: { ...live.metadata, finalizers } };
    this.cache.set(next);
    return next;
  }

  async applyStatus(name: ObjectName, status: object) {
    this.statuses.push({ name: name.name, status: status as Partial<ContainerStatus> });
    const live = this.cache.get(joinKey(name))!;
    const next = { ...live, status: status as ContainerStatus };
    this.cache.set(next);
    return next;
  }

  /** The last status written for a Container. */
  status(name: string): Partial<ContainerStatus> | undefined {
    return this.statuses.findLast((s) => s.name === name)?.status;
  }

  ready(name: string) {
    return this.status(name)?.conditions?.find((c) => c.type === 'Ready');
  }
}

/** The Migration API: records the agent's reports and merges them into the cached Migration. */
export class FakeMigrationsApi implements Pick<CustomResourceClient<Migration>, 'applyStatus'> {
  readonly reports: Record<string, unknown>[] = [];

  constructor(private readonly cache: Store<Migration>) {}

  async applyStatus(name: ObjectName, status: object) {
    const report = status as NonNullable<Migration['status']>;
    this.reports.push(report);
    const live = this.cache.get(joinKey(name))!;
    const types = new Set(report.conditions?.map((c) => c.type));
    const conditions = [
      ...(live.status?.conditions ?? []).filter((c) => !types.has(c.type)),
      ...(report.conditions ?? []),
    ];
    const next = { ...live, status: { ...live.status, ...report, conditions } };
    this.cache.set(next);
    return next;
  }

  /** The agent's conditions on the Migration, as "Type=Status". */
  conditions(): string[] {
    return (this.reports.at(-1)?.conditions as { type: string; status: string }[]).map(
      (c) => `${c.type}=${c.status}`,
    );
  }
}

export function container(
  name: string,
  spec: Partial<Container['spec']> = {},
  extra: object = {},
): Container {
  return {
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Container',
    metadata: { name, namespace: ns, uid: `${name}-uid`, generation: 1, ...extra },
    spec: { image: 'registry.example/app:1', nodeName: host, ...spec },
  } as Container;
}

export interface AgentSetup {
  backoff?: BackoffSettings;
  /** Where other agents serve checkpoints, by Host name. */
  transferEndpoints?: Record<string, string>;
  /** Other agents' transfer public keys, by Host name. */
  transferKeys?: Record<string, string>;
  /** This agent's transfer key (a new one in its state directory by default). */
  transferKey?: TransferKey;
  /** The transfer token in every migration's Secret. */
  transferToken?: string;
  /** Another agent's runtime and cache: this one is that agent restarted (nothing else kept). */
  restartOf?: { runtime: TestRuntime; cache: Store<Container> };
  /** A checkpoint migration's source drains this long before its freeze (default: not at all). */
  migrationDrainMs?: number;
}

/** One agent on `host`, with every dependency of its Container reconciler in memory. */
export function agent(setup: AgentSetup = {}) {
  const runtime = setup.restartOf?.runtime ?? new TestRuntime();
  const cri = runtime as AgentRuntime as CriClient;
  const cache = setup.restartOf?.cache ?? new Store<Container>();
  const migrations = new Store<Migration>();
  const api = new FakeContainersApi(cache);
  const migrationsApi = new FakeMigrationsApi(migrations);
  const recorder = new RecordingRecorder();
  const enqueued: string[] = [];
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-agent-'));
  stateDirs.push(stateDir);
  const token = Buffer.from(setup.transferToken ?? '').toString('base64');
  const fence = { up: false };
  const migrationSupport = new MigrationSupport(
    { host, fieldManager: `gantry-agent/${host}`, stateDir, secretNamespace: 'gantry-system' },
    {
      // The only call made through the client: reading the transfer token's Secret.
      client: {
        api: () => ({ readNamespacedSecret: async () => ({ data: { token } }) }),
      } as unknown as KubeClient,
      migrations,
      migrationsApi,
      hostsApi: {
        get: async ({ name }) =>
          ({
            metadata: { name },
            status: {
              transferEndpoint: setup.transferEndpoints?.[name],
              transferPublicKey: setup.transferKeys?.[name],
            },
          }) as Host,
      },
      transferKey: setup.transferKey ?? TransferKey.loadOrCreate(path.join(stateDir, 'transfer-key.pem')),
    },
  );
  const reconciler = new ContainerReconciler(
    {
      fieldManager: `gantry-agent/${host}`,
      logRoot: path.join(stateDir, 'logs'),
      backoff: setup.backoff ?? { initialMs: 10_000, maxMs: 300_000, resetAfterMs: 600_000 },
      criuConfig: migrationSupport.criuConfig,
      migrationDrainMs: setup.migrationDrainMs,
    },
    {
      cri,
      cache,
      containers: api,
      puller: new ImagePuller(cri, {
        concurrency: 2,
        initialBackoffMs: 1000,
        maxBackoffMs: 10_000,
        recordFile: path.join(stateDir, 'pulled-with.json'),
      }),
      health: new HealthMonitor(cri, () => {}),
      recorder,
      pullAuth: async () => ({ problems: [] }),
      pinnedImage: () => undefined,
      enqueue: (key) => void enqueued.push(key),
      migrations: migrationSupport,
      fence,
    },
  );
  const reconcile = (name: string) => reconciler.reconcile(`${ns}/${name}`, ctx);
  return {
    runtime,
    cache,
    migrations,
    api,
    migrationsApi,
    recorder,
    enqueued,
    stateDir,
    fence,
    migrationSupport,
    reconciler,
    /** One reconcile of the Container named `name`. */
    reconcile,
    /** Resolves once the Container named `name` was queued again `times` times in all (work in the background ended). */
    async queued(name: string, times = 1) {
      const count = () => enqueued.filter((k) => k === `${ns}/${name}`).length;
      for (let i = 0; i < 200 && count() < times; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(count(), times, `${name} queued again ${times} time(s)`);
    },
    /** Adds a Container and reconciles it until it runs (two passes: create and start, then report). */
    async run(c: Container) {
      cache.set(c);
      await reconcile(c.metadata.name!);
      await reconcile(c.metadata.name!);
      return (await runtime.held(c.metadata.uid!)).containers[0]!;
    },
  };
}

export type Agent = ReturnType<typeof agent>;
