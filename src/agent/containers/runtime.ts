// The runtime objects of one Container, found by the UID label they all carry: what the runtime
// holds for it, its image, and the sandbox and container of a new attempt. The lifecycle and the
// migration steps both create through here, so a restore is made exactly as a start is.
import fs from 'node:fs';
import {
  defaultPullPolicy,
  type Container,
  type ContainerSpec,
  type ContainerStatus,
} from '../../api/v1alpha1/index.js';
import type { EventRecorder } from '../../kube/events.js';
import {
  type Container as RuntimeContainer,
  type CriClient,
  CriError,
  type PodSandbox,
} from '../../cri/client.js';
import { type ImagePuller, PullError } from '../pull.js';
import type { PullAuth } from '../pullsecrets.js';
import {
  type ClusterDns,
  type ContainerIdentity,
  containerConfig,
  labels,
  sandboxConfig,
} from '../runtimespec.js';

/** Label on a runtime container: the restart back-off step it was started with. */
export const backoffStepLabel = 'gantry.dev/backoff-step';

/** What the runtime holds for one Container UID. */
export interface RuntimeState {
  sandbox?: PodSandbox;
  /** Sandboxes to remove: not ready, or duplicates. */
  staleSandboxes: PodSandbox[];
  /** The sandbox's containers, newest attempt last. */
  attempts: RuntimeContainer[];
  nextSandboxAttempt: number;
}

export interface RuntimeObjectsOptions {
  /** Root of the containers' log directories. */
  logRoot: string;
  cgroupParent?: string;
  /** The Host's address, where hostPorts are published. */
  nodeIP?: string;
  clusterDns?: ClusterDns;
  /** CRIU's options for the checkpoints of these containers (migration.ts criuConfig). */
  criuConfig?: string;
}

export interface RuntimeObjectsDeps {
  cri: CriClient;
  puller: ImagePuller;
  recorder: EventRecorder;
  /** Registry credentials for a Container's image from its imagePullSecrets. */
  pullAuth: (c: Container, image: string) => Promise<PullAuth>;
  /** The digest-pinned reference of the image when an Image object resolved it. */
  pinnedImage: (namespace: string, image: string) => string | undefined;
  /** Asks for another reconcile of a key (a pull finished...). */
  enqueue: (key: string) => void;
}

function identity(c: Container): ContainerIdentity {
  return {
    namespace: c.metadata.namespace ?? 'default',
    name: c.metadata.name ?? '',
    uid: c.metadata.uid ?? '',
    labels: c.metadata.labels,
  };
}

export async function ignoreNotFound(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof CriError && e.isNotFound())) throw e;
  }
}

/** Stops and removes a sandbox, with whatever containers are left in it. */
export async function removeSandbox(cri: CriClient, podSandboxId: string): Promise<void> {
  await ignoreNotFound(cri.stopPodSandbox({ podSandboxId }));
  await ignoreNotFound(cri.removePodSandbox({ podSandboxId }));
}

export class RuntimeObjects {
  constructor(
    private readonly opts: RuntimeObjectsOptions,
    private readonly deps: RuntimeObjectsDeps,
  ) {}

  async observe(uid: string): Promise<RuntimeState> {
    const selector = { [labels.uid]: uid };
    const [{ items }, { containers }] = await Promise.all([
      this.deps.cri.listPodSandbox({ filter: { labelSelector: selector } }),
      this.deps.cri.listContainers({ filter: { labelSelector: selector } }),
    ]);
    const byAge = [...items].sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
    const sandbox = byAge.find((s) => s.state === 'SANDBOX_READY');
    const attempts = containers
      .filter((rc) => rc.podSandboxId === sandbox?.id)
      .sort((a, b) => (a.metadata?.attempt ?? 0) - (b.metadata?.attempt ?? 0));
    return {
      sandbox,
      staleSandboxes: byAge.filter((s) => s !== sandbox),
      attempts,
      nextSandboxAttempt: Math.max(-1, ...items.map((s) => s.metadata?.attempt ?? 0)) + 1,
    };
  }

  /** Pulls the image without holding a worker: a pending pull re-enqueues the key when done. */
  async imageFor(
    key: string,
    c: Container,
    spec: ContainerSpec,
  ): Promise<{ image: string } | { waiting: Partial<ContainerStatus>; requeueAfter?: number }> {
    const ref = this.deps.pinnedImage(c.metadata.namespace ?? 'default', spec.image) ?? spec.image;
    const policy = spec.imagePullPolicy ?? defaultPullPolicy(spec.image);
    const { puller } = this.deps;
    if (policy !== 'Always') {
      const present = await puller.present(ref);
      // Open to any credentials: no need to read this Container's (ensure checks them otherwise).
      if (present && puller.openToAll(present, ref)) return { image: present };
    }
    const { auth, problems } = await this.deps.pullAuth(c, ref);
    try {
      // Either at once (present, or a quick pull), or in the background. A pull already in
      // flight for another Container is joined, so this one is re-queued when it ends too.
      const pulling = puller.ensure(ref, policy, auth);
      const done = await Promise.race([pulling, new Promise<undefined>((r) => setTimeout(r, 50, undefined))]);
      if (done) return { image: done };
      this.deps.recorder.event(c, 'Normal', 'Pulling', 'Pull', `Pulling image ${ref}`);
      pulling.then(
        () => this.deps.enqueue(key),
        () => this.deps.enqueue(key),
      );
      return { waiting: { phase: 'Creating', reason: 'Pulling', message: `Pulling image ${ref}` } };
    } catch (e) {
      if (!(e instanceof PullError)) throw e;
      // A named pull Secret that is missing or unusable is the likelier cause: say so first.
      const reason = problems.length > 0 ? 'ImagePullSecretMissing' : e.reason;
      const message = [...problems, e.message].join('; ');
      this.deps.recorder.event(c, 'Warning', reason, 'Pull', message);
      return {
        waiting: { phase: 'Creating', reason, message },
        requeueAfter: Math.max(1000, e.retryAt - Date.now()),
      };
    }
  }

  /**
   * Creates the runtime container of `attempt` from `image` (an image, or a checkpoint archive to
   * restore) in the Container's sandbox, creating the sandbox first if needed, and starts it.
   * Resolves with its ID, or undefined when an earlier create of ours already holds the name.
   */
  async createAndStart(
    c: Container,
    spec: ContainerSpec,
    state: RuntimeState,
    image: string,
    attempt: number,
    backoffStep: number,
  ): Promise<string | undefined> {
    const id = identity(c);
    let sandbox = state.sandbox;
    const sbConfig = sandboxConfig(id, spec, {
      logRoot: this.opts.logRoot,
      cgroupParent: this.opts.cgroupParent,
      clusterDns: this.opts.clusterDns,
      attempt: sandbox?.metadata?.attempt ?? state.nextSandboxAttempt,
      nodeIP: this.opts.nodeIP,
    });
    if (!sandbox) {
      fs.mkdirSync(sbConfig.logDirectory!, { recursive: true });
      const { podSandboxId } = await this.deps.cri.runPodSandbox({ config: sbConfig });
      sandbox = (await this.observe(id.uid)).sandbox;
      if (sandbox?.id !== podSandboxId)
        throw new Error(`sandbox ${podSandboxId} is not ready after creation`);
    }
    // Older attempts only take space; the latest exited one stays until the new one exists.
    const previous = state.attempts.filter((rc) => rc.podSandboxId === sandbox!.id);
    const config = containerConfig(id, spec, { image, attempt, criuConfig: this.opts.criuConfig });
    config.labels = { ...config.labels, [backoffStepLabel]: String(backoffStep) };
    let containerId: string;
    try {
      ({ containerId } = await this.deps.cri.createContainer({
        podSandboxId: sandbox.id,
        config,
        sandboxConfig: sbConfig,
      }));
    } catch (e) {
      // A create that succeeded before a crash of ours: the name is taken by our own container.
      if (!(e instanceof CriError && /already reserved|already exists/.test(e.details))) throw e;
      return undefined;
    }
    for (const old of previous) await ignoreNotFound(this.deps.cri.removeContainer({ containerId: old.id }));
    await this.deps.cri.startContainer({ containerId });
    return containerId;
  }
}
