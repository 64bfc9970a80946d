// A Container's life on its host, against the simulated runtime: started in a sandbox of its own,
// reported Running, restarted after an exit with a back-off that doubles per quick crash (or left
// exited, as its restartPolicy says), every restart counted even when its sandbox was removed
// behind the agent's back, replaced when its spec changes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runtimeCleanupFinalizer } from '../../../src/api/v1alpha1/index.js';
import { nextAttempt } from '../../../src/agent/containers/lifecycle.js';
import { labels } from '../../../src/agent/runtimespec.js';
import { CriError } from '../../../src/cri/connection.js';
import * as grpc from '@grpc/grpc-js';
import { agent, container, ns } from './fakes.js';

describe('Container lifecycle', () => {
  it('gives a new Container its finalizer, a sandbox and a running container, and reports it Running in one write', async () => {
    const a = agent();
    a.cache.set(container('app'));
    await a.reconcile('app');
    assert.deepEqual(a.api.finalizers, [{ name: 'app', finalizers: [runtimeCleanupFinalizer] }]);
    const { sandboxes, containers } = await a.runtime.held('app-uid');
    assert.equal(sandboxes.length, 1);
    assert.equal(sandboxes[0]!.state, 'SANDBOX_READY');
    assert.equal(containers.length, 1);
    assert.equal(containers[0]!.state, 'CONTAINER_RUNNING');
    assert.equal(containers[0]!.podSandboxId, sandboxes[0]!.id);
    assert.deepEqual(a.enqueued, [], 'reported in the same reconcile, not queued again');

    const status = a.api.status('app');
    assert.equal(status?.phase, 'Running');
    assert.equal(status?.containerID, containers[0]!.id);
    assert.equal(status?.sandboxID, sandboxes[0]!.id);
    assert.match(status?.ip ?? '', /^10\.254\./);
    assert.equal(status?.restartCount, 0);
    assert.equal(status?.observedGeneration, 1);
    assert.equal(a.api.ready('app')?.status, 'True');
    assert.deepEqual(
      a.api.status('app')?.conditions?.find((x) => x.type === 'Scheduled')?.status,
      'True',
      'the agent says it is scheduled',
    );
    assert.equal(a.api.statuses.length, 1, 'one status write for a first start');
    assert.deepEqual(a.recorder.reasons(), [], 'no Event for a first start that went well');
  });

  it('says in status and with a Warning when the runtime cannot create the container', async () => {
    const a = agent();
    const details = 'failed to create containerd container: no such file: /no/such/binary';
    a.runtime.failing.set(
      'CreateContainer',
      new CriError('CreateContainer', grpc.status.UNKNOWN, details, `CreateContainer: ${details}`),
    );
    a.cache.set(container('app'));
    await assert.rejects(a.reconcile('app'), CriError);
    assert.equal(a.api.status('app')?.reason, 'CreateContainerError');
    assert.match(a.api.status('app')?.message ?? '', /could not create or start/);
    assert.ok(a.recorder.reasons().includes('Warning CreateContainerError'));
  });

  it('refuses to start as root what must not run as root, saying how to fix it', async () => {
    const a = agent();
    // The simulated runtime's images name no user: they run as root.
    a.cache.set(container('app', { securityContext: { runAsNonRoot: true } }));
    await a.reconcile('app');
    assert.equal((await a.runtime.held('app-uid')).containers.length, 0, 'nothing was created');
    assert.equal(a.api.status('app')?.reason, 'CreateContainerConfigError');
    assert.match(a.api.status('app')?.message ?? '', /runs as root .* set securityContext.runAsUser/);
    assert.ok(a.recorder.reasons().includes('Warning CreateContainerConfigError'));

    a.cache.set(container('user', { securityContext: { runAsNonRoot: true, runAsUser: 1000 } }));
    await a.run(a.cache.get(`${ns}/user`)!);
    assert.equal(a.api.status('user')?.phase, 'Running', 'runAsUser decides, not the image');
  });

  it('restarts an exited process after a back-off that doubles with each quick crash, counting restarts', async () => {
    const a = agent({ backoff: { initialMs: 10_000, maxMs: 300_000, resetAfterMs: 600_000 } });
    const first = await a.run(container('app'));
    await a.runtime.processExited(first.id, 1);
    const wait = await a.reconcile('app');
    assert.ok(wait && wait.requeueAfter! > 9_000 && wait.requeueAfter! <= 10_000, JSON.stringify(wait));
    assert.equal(a.api.status('app')?.phase, 'Restarting');
    assert.equal(a.api.status('app')?.reason, 'CrashLoopBackOff');
    assert.equal(a.api.status('app')?.exitCode, 1);
    assert.ok(a.api.status('app')?.nextRestartAt);
    assert.ok(a.recorder.reasons().includes('Warning BackOff'));
    assert.deepEqual(
      (await a.runtime.held('app-uid')).containers.map((c) => c.id),
      [first.id],
      'not restarted before the back-off ends',
    );

    // Once the back-off has passed, a new attempt replaces the exited one.
    await a.runtime.processExited(first.id, 1, 20_000);
    await a.reconcile('app');
    const [second, ...others] = (await a.runtime.held('app-uid')).containers;
    assert.deepEqual(others, [], 'the exited attempt is removed');
    assert.equal(second!.state, 'CONTAINER_RUNNING');
    assert.equal(second!.metadata?.attempt, 1);
    assert.equal(second!.labels['gantry.dev/backoff-step'], '1');
    await a.reconcile('app');
    assert.equal(a.api.status('app')?.phase, 'Running');
    assert.equal(a.api.status('app')?.restartCount, 1);

    // It crashes again at once: the next back-off is twice as long.
    await a.runtime.processExited(second!.id, 1);
    const longer = await a.reconcile('app');
    assert.ok(
      longer && longer.requeueAfter! > 19_000 && longer.requeueAfter! <= 20_000,
      JSON.stringify(longer),
    );
  });

  it('counts a restart when something outside Gantry removed the sandbox: the status is the record', async () => {
    const a = agent({ backoff: { initialMs: 10_000, maxMs: 300_000, resetAfterMs: 600_000 } });
    const first = await a.run(container('app'));
    // Killed behind the agent's back (exit 137), the agent backs off...
    await a.runtime.processExited(first.id, 137);
    await a.reconcile('app');
    assert.equal(a.api.status('app')?.phase, 'Restarting');
    assert.equal(a.api.status('app')?.restartCount, 0);
    // ...and meanwhile the sandbox goes, with the runtime's record of the attempt.
    const [sandbox] = (await a.runtime.held('app-uid')).sandboxes;
    await a.runtime.stopPodSandbox({ podSandboxId: sandbox!.id });
    await a.runtime.removePodSandbox({ podSandboxId: sandbox!.id });

    await a.reconcile('app');
    assert.equal(a.api.status('app')?.restartCount, 1, 'said while creating the new sandbox');
    const [second] = (await a.runtime.held('app-uid')).containers;
    assert.equal(second!.metadata?.attempt, 1);
    assert.ok(a.recorder.events.includes('Normal Started: Started attempt 1 from registry.example/app:1'));
    await a.reconcile('app');
    assert.equal(a.api.status('app')?.phase, 'Running');
    assert.equal(a.api.status('app')?.restartCount, 1);

    // Removed while running, too: the next start counts again.
    const [running] = (await a.runtime.held('app-uid')).sandboxes;
    await a.runtime.removePodSandbox({ podSandboxId: running!.id });
    await a.reconcile('app');
    await a.reconcile('app');
    assert.equal((await a.runtime.held('app-uid')).containers[0]!.metadata?.attempt, 2);
    assert.equal(a.api.status('app')?.restartCount, 2);
  });

  it('nextAttempt: the first start is 0; a reported attempt that was created is followed by the next', () => {
    assert.equal(nextAttempt(undefined), 0);
    assert.equal(nextAttempt({ phase: 'Creating', restartCount: 0 }), 0, 'pulling for the first start');
    assert.equal(nextAttempt({ phase: 'Running', restartCount: 0, containerID: 'c0' }), 1);
    assert.equal(nextAttempt({ phase: 'Restarting', restartCount: 3, containerID: 'c3' }), 4);
    assert.equal(nextAttempt({ phase: 'Creating', restartCount: 4 }), 4, 'attempt 4 was never created');
  });

  it('leaves an exited process exited under restartPolicy Never: Failed on an error, Succeeded on 0', async () => {
    for (const [exitCode, phase, reason] of [
      [1, 'Failed', 'Error'],
      [0, 'Succeeded', 'Completed'],
    ] as const) {
      const a = agent();
      const rc = await a.run(container('job', { restartPolicy: 'Never' }));
      await a.runtime.processExited(rc.id, exitCode);
      assert.equal(await a.reconcile('job'), undefined, 'no requeue');
      await a.reconcile('job');
      const status = a.api.status('job');
      assert.equal(status?.phase, phase);
      assert.equal(status?.reason, reason);
      assert.equal(status?.exitCode, exitCode);
      assert.match(status?.message ?? '', /restartPolicy is Never/);
      assert.equal(a.api.ready('job')?.status, 'False');
      const { containers } = await a.runtime.held('job-uid');
      assert.deepEqual(
        containers.map((c) => [c.id, c.state]),
        [[rc.id, 'CONTAINER_EXITED']],
        'nothing started again',
      );
    }
  });

  it('replaces the running container in its sandbox when the spec changes', async () => {
    const a = agent();
    const c = container('app', { terminationGracePeriodSeconds: 7 });
    const old = await a.run(c);
    const sandbox = (await a.runtime.held('app-uid')).sandboxes[0]!;
    a.cache.set({
      ...a.cache.get(`${ns}/app`)!,
      metadata: { ...c.metadata, generation: 2 },
      spec: { ...c.spec, env: [{ name: 'GREETING', value: 'hello' }] },
    });
    await a.reconcile('app');
    assert.ok(a.recorder.events.includes('Normal Killing: The spec changed: replacing the container'));
    assert.deepEqual(
      a.runtime.calls.filter((x) => x.method === 'StopContainer'),
      [{ method: 'StopContainer', id: old.id, timeout: 7 }],
      'the old one stopped gracefully',
    );
    const { sandboxes, containers } = await a.runtime.held('app-uid');
    assert.deepEqual(
      sandboxes.map((s) => s.id),
      [sandbox.id],
      'in the same sandbox',
    );
    assert.equal(containers.length, 1, 'the old container is removed');
    assert.notEqual(containers[0]!.id, old.id);
    assert.equal(containers[0]!.state, 'CONTAINER_RUNNING');
    assert.notEqual(containers[0]!.labels[labels.specHash], old.labels[labels.specHash]);

    await a.reconcile('app');
    assert.equal(a.api.status('app')?.phase, 'Running');
    assert.equal(a.api.status('app')?.containerID, containers[0]!.id);
    assert.equal(a.api.status('app')?.observedGeneration, 2);
  });
});
