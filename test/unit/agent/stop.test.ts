// spec.stopped on the agent (docker stop, docker start), against the simulated runtime: Stopping
// is reported before SIGTERM, the stop runs beside the workers with its grace period, Stopped
// follows with the exit and nothing restarts it (restart policy and back-off aside), not even a
// restarted agent; stopped no longer, it runs again as a new attempt in the same sandbox. A
// Workload's replica is not stopped, and says why.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Container } from '../../../src/api/v1alpha1/index.js';
import { stopGraceSeconds, stopStep } from '../../../src/agent/stop.js';
import { agent, container, ns, type Agent } from './fakes.js';

/** Sets the Container's spec fields in the agent's cache, as an update seen by its watch would. */
function update(a: Agent, name: string, spec: Partial<Container['spec']>): void {
  const live = a.cache.get(`${ns}/${name}`)!;
  const generation = (live.metadata.generation ?? 1) + 1;
  a.cache.set({ ...live, metadata: { ...live.metadata, generation }, spec: { ...live.spec, ...spec } });
}

/** Stops the Container and lets the stop end: Stopping, then (queued again) Stopped. */
async function stopped(a: Agent, name: string, spec: Partial<Container['spec']> = {}): Promise<void> {
  update(a, name, { stopped: true, ...spec });
  await a.reconcile(name);
  await a.queued(name);
  await a.reconcile(name); // the stop just ended: queued again for a fresh look
  await a.reconcile(name);
}

describe('stopStep', () => {
  it('stops what runs, reports what does not, and runs again only what a stop ended', () => {
    const cases: [Parameters<typeof stopStep>[0], ReturnType<typeof stopStep>][] = [
      [{ stopped: true, latest: 'CONTAINER_RUNNING', phase: 'Running' }, 'stop'],
      [{ stopped: true, latest: 'CONTAINER_RUNNING', phase: 'Stopping' }, 'stop'],
      [{ stopped: true, latest: 'CONTAINER_EXITED', phase: 'Stopping' }, 'report'],
      [{ stopped: true, latest: 'CONTAINER_EXITED', phase: 'Restarting' }, 'report'],
      [{ stopped: true, latest: 'CONTAINER_CREATED', phase: 'Creating' }, 'report'],
      [{ stopped: true, latest: undefined, phase: undefined }, 'report'],
      [{ stopped: false, latest: 'CONTAINER_EXITED', phase: 'Stopped' }, 'start'],
      [{ stopped: false, latest: 'CONTAINER_UNKNOWN', phase: 'Stopping' }, 'start'],
      // An exit that was no stop: the restart policy decides.
      [{ stopped: false, latest: 'CONTAINER_EXITED', phase: 'Running' }, 'none'],
      [{ stopped: false, latest: 'CONTAINER_EXITED', phase: 'Succeeded' }, 'none'],
      // Started again while the process was still on its way out (an agent restart lost the stop).
      [{ stopped: false, latest: 'CONTAINER_RUNNING', phase: 'Stopping' }, 'none'],
      [{ stopped: false, latest: 'CONTAINER_CREATED', phase: 'Stopped' }, 'none'],
      [{ stopped: false, latest: undefined, phase: 'Stopped' }, 'none'],
    ];
    for (const [facts, step] of cases) assert.equal(stopStep(facts), step, JSON.stringify(facts));
  });

  it('stopGraceSeconds: stop -t when given, else terminationGracePeriodSeconds', () => {
    const spec = container('app', { terminationGracePeriodSeconds: 30 }).spec;
    assert.equal(stopGraceSeconds(spec), 30);
    assert.equal(stopGraceSeconds({ ...spec, stopGracePeriodSeconds: 0 }), 0);
  });
});

describe('a stopped Container on its agent', () => {
  it('reports Stopping, then stops the process with its grace period and reports Stopped; nothing restarts it', async () => {
    const a = agent();
    const rc = await a.run(container('app', { terminationGracePeriodSeconds: 7 }));
    const sandbox = (await a.runtime.held('app-uid')).sandboxes[0]!;
    update(a, 'app', { stopped: true });
    await a.reconcile('app');
    assert.equal(a.api.status('app')?.phase, 'Stopping', 'said before the process gets SIGTERM');
    assert.equal(a.api.ready('app')?.status, 'False');
    assert.ok(a.recorder.events.includes('Normal Killing: Stopping container (grace period 7s)'));
    await a.queued('app');
    await a.reconcile('app');
    await a.reconcile('app');

    assert.deepEqual(a.runtime.calls, [{ method: 'StopContainer', id: rc.id, timeout: 7 }]);
    const status = a.api.status('app');
    assert.equal(status?.phase, 'Stopped');
    assert.equal(status?.reason, 'Stopped');
    assert.equal(status?.exitCode, 0);
    assert.equal(status?.containerID, rc.id);
    assert.ok(status?.finishedAt);
    assert.equal(status?.ip, undefined, 'no address: nothing answers there');
    assert.equal(status?.observedGeneration, 2);
    assert.deepEqual(
      { status: a.api.ready('app')?.status, reason: a.api.ready('app')?.reason },
      { status: 'False', reason: 'Stopped' },
    );
    const conditions = new Map(status?.conditions?.map((c) => [c.type, c.status]));
    assert.equal(conditions.has('Stalled'), false, 'stopped as asked: kstatus Current');
    assert.equal(conditions.has('Reconciling'), false);
    const { sandboxes, containers } = await a.runtime.held('app-uid');
    assert.deepEqual(
      sandboxes.map((s) => s.id),
      [sandbox.id],
      'the sandbox stays',
    );
    assert.deepEqual(
      containers.map((c) => [c.id, c.state]),
      [[rc.id, 'CONTAINER_EXITED']],
    );

    // restartPolicy Always and a quick exit: no back-off, no restart, and nothing new to say (the
    // apply of the same status is no write: isApplyNoop).
    assert.equal(await a.reconcile('app'), undefined, 'no requeue');
    assert.deepEqual(a.api.statuses.at(-1), a.api.statuses.at(-2), 'a stopped one is reported as it was');
    assert.equal(a.recorder.reasons().includes('Warning BackOff'), false);
    assert.equal((await a.runtime.held('app-uid')).containers.length, 1);
  });

  it('uses stopGracePeriodSeconds (stop -t) instead of terminationGracePeriodSeconds', async () => {
    const a = agent();
    await a.run(container('app', { terminationGracePeriodSeconds: 30 }));
    await stopped(a, 'app', { stopGracePeriodSeconds: 2 });
    assert.deepEqual(
      a.runtime.calls.map((c) => c.timeout),
      [2],
    );
    assert.equal(a.api.status('app')?.phase, 'Stopped');
  });

  it('holds no worker while the process uses its grace period, and stops it once', async () => {
    const a = agent();
    await a.run(container('stubborn'));
    let exit!: () => void;
    const stop = a.runtime.stopContainer.bind(a.runtime);
    a.runtime.stopContainer = async (req) => {
      await new Promise<void>((resolve) => (exit = resolve)); // the process ignores SIGTERM
      return stop(req);
    };
    update(a, 'stubborn', { stopped: true });
    await a.reconcile('stubborn');
    await a.reconcile('stubborn'); // a resync meanwhile
    // Started again before the stop ended: the stop goes on, and nothing runs twice.
    update(a, 'stubborn', { stopped: false });
    await a.reconcile('stubborn');
    assert.equal(a.api.status('stubborn')?.phase, 'Stopping');
    assert.equal(a.recorder.events.filter((e) => e.includes('Killing')).length, 1, 'one stop, one event');
    assert.deepEqual(a.enqueued, [], 'not queued before the stop ends');

    exit();
    await a.queued('stubborn');
    await a.reconcile('stubborn');
    await a.reconcile('stubborn');
    await a.reconcile('stubborn');
    const { containers } = await a.runtime.held('stubborn-uid');
    assert.deepEqual(
      containers.map((c) => [c.metadata?.attempt, c.state]),
      [[1, 'CONTAINER_RUNNING']],
      'run again once the stop ended',
    );
    assert.equal(a.api.status('stubborn')?.phase, 'Running');
  });

  it('stays stopped through an agent restart', async () => {
    const a = agent();
    await a.run(container('app'));
    await stopped(a, 'app');
    const calls = a.runtime.calls.length;
    const restarted = agent({ restartOf: a });
    await restarted.reconcile('app');
    await restarted.reconcile('app');
    const { containers } = await a.runtime.held('app-uid');
    assert.deepEqual(
      containers.map((c) => c.state),
      ['CONTAINER_EXITED'],
      'nothing started',
    );
    assert.equal(a.runtime.calls.length, calls, 'nothing stopped again');
    assert.equal(restarted.api.status('app')?.phase, 'Stopped');
  });

  it('stopped no longer, runs again at once as a new attempt in its sandbox, whatever restartPolicy says', async () => {
    const a = agent();
    const first = await a.run(container('job', { restartPolicy: 'Never' }));
    const sandbox = (await a.runtime.held('job-uid')).sandboxes[0]!;
    const firstStart = a.api.status('job')!.startedAt!;
    await stopped(a, 'job');
    assert.equal(a.api.status('job')?.phase, 'Stopped', 'not Succeeded: it was stopped');

    update(a, 'job', { stopped: false });
    await a.reconcile('job');
    const { sandboxes, containers } = await a.runtime.held('job-uid');
    assert.deepEqual(
      sandboxes.map((s) => s.id),
      [sandbox.id],
      'in the same sandbox',
    );
    assert.equal(containers.length, 1, 'the stopped attempt is removed');
    assert.notEqual(containers[0]!.id, first.id);
    assert.equal(containers[0]!.metadata?.attempt, 1);
    assert.equal(containers[0]!.state, 'CONTAINER_RUNNING');
    const status = a.api.status('job');
    assert.equal(status?.phase, 'Running');
    assert.equal(status?.restartCount, 1);
    assert.equal(status?.observedGeneration, 3);
    assert.equal(status?.containerID, containers[0]!.id);
    assert.ok(status!.startedAt! >= firstStart, `${status?.startedAt} not before ${firstStart}`);
    assert.ok(
      a.recorder.events.includes(
        'Normal Started: Started attempt 1 from registry.example/app:1: spec.stopped is false again',
      ),
    );
  });

  it('runs again a Container whose stopped attempt is gone already (an agent restart between the two)', async () => {
    const a = agent();
    const first = await a.run(container('app'));
    await stopped(a, 'app');
    await a.runtime.removeContainer({ containerId: first.id });
    update(a, 'app', { stopped: false });
    await a.reconcile('app');
    const { containers } = await a.runtime.held('app-uid');
    assert.deepEqual(
      containers.map((c) => [c.metadata?.attempt, c.state]),
      [[1, 'CONTAINER_RUNNING']],
    );
  });

  it('created stopped, starts nothing until stopped is false', async () => {
    const a = agent();
    a.cache.set(container('later', { stopped: true }));
    await a.reconcile('later');
    assert.deepEqual(await a.runtime.held('later-uid'), { sandboxes: [], containers: [] });
    assert.equal(a.api.status('later')?.phase, 'Stopped');
    assert.equal(a.api.status('later')?.message, 'spec.stopped is true: the process is not started');
    assert.equal(
      a.api.status('later')?.conditions?.find((c) => c.type === 'Scheduled')?.status,
      'True',
      'bound: it stays on its Host',
    );

    update(a, 'later', { stopped: false });
    await a.reconcile('later');
    const { containers } = await a.runtime.held('later-uid');
    assert.deepEqual(
      containers.map((c) => [c.metadata?.attempt, c.state]),
      [[0, 'CONTAINER_RUNNING']],
    );
    assert.equal(a.api.status('later')?.phase, 'Running');
  });

  it("does not stop a Workload's replica, and says why: in its status and with a Warning, once", async () => {
    const a = agent();
    const replica = container(
      'web-1',
      {},
      {
        ownerReferences: [
          {
            apiVersion: 'gantry.dev/v1alpha1',
            kind: 'Workload',
            name: 'web',
            uid: 'web-uid',
            controller: true,
          },
        ],
      },
    );
    const rc = await a.run(replica);
    update(a, 'web-1', { stopped: true });
    await a.reconcile('web-1');
    await a.reconcile('web-1');
    assert.deepEqual(a.runtime.calls, [], 'nothing stopped');
    assert.deepEqual(
      (await a.runtime.held('web-1-uid')).containers.map((c) => [c.id, c.state]),
      [[rc.id, 'CONTAINER_RUNNING']],
    );
    const status = a.api.status('web-1');
    assert.equal(status?.phase, 'Running');
    assert.match(
      status?.message ?? '',
      /^spec.stopped is ignored: this Container is a replica of Workload web, .* scale the Workload instead/,
    );
    assert.equal(a.recorder.reasons().filter((r) => r === 'Warning StopIgnored').length, 1);
  });
});
