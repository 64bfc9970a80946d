// `kubectl gantry stop` and `start` as users type them (docker stop, docker start): the cluster's
// own kubectl finds the plugin on the PATH, each user is a ServiceAccount with its own token bound
// to `edit` or `view`, and RBAC decides. A shell that traps SIGTERM is stopped (its log says it got
// the signal, the runtime records its exit), stays stopped through an agent restart (the runtime's
// event stream shows nothing started), and starts again as a new run; the earlier run's log stays.
// A process that ignores SIGTERM is killed after -t seconds; a Workload's replica is refused; a
// stopped Container moves by Restart, stopped, and not by Checkpoint.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { Container } from '../../src/api/v1alpha1/index.js';
import { attemptLogFile, findContainerLogs, parseCriLog } from '../../src/agent/logs.js';
import { labels } from '../../src/agent/runtimespec.js';
import { CriClient } from '../../src/cri/client.js';
import { agentStateDir, startAgent, startGantry, stopAgent } from '../../src/localcluster/gantry.js';
import { deleteTestNamespace, getObject, kubectl, kubectlOk, localCluster } from '../support/cluster.js';
import { nanosIso, RuntimeRecorder } from '../support/runtime.js';
import { typed, userWithRole } from '../support/users.js';
import { eventually } from '../support/wait.js';

const cluster = localCluster();
const ns = `e2e-plugin-stop-${process.pid}`;
// Only these Containers can print it.
const marker = `stop-e2e-${process.pid}-${Date.now()}`;

let editor: string; // bound to edit in ns
let reader: string; // bound to view in ns

const get = async (name: string) => (await getObject<Container>(['containers.gantry.dev', name, '-n', ns]))!;

/** The Container once its agent reports `phase` for its current spec. */
const reported = (name: string, phase: string, timeoutMs = 120_000) =>
  eventually(
    `${name} to be ${phase}`,
    async () => {
      const c = await get(name);
      const current = (c.status?.observedGeneration ?? 0) >= (c.metadata.generation ?? 0);
      return current && c.status?.phase === phase ? c : undefined;
    },
    { timeoutMs, intervalMs: 500 },
  );

/** A CRI client of the Host a Container is bound to. */
function criOf(c: Container): { host: string; cri: CriClient } {
  const host = cluster.hosts.find((h) => h.name === c.spec.nodeName);
  assert.ok(host, `${c.metadata.name} is bound to ${c.spec.nodeName}, no host of the local cluster`);
  return { host: host.name, cri: new CriClient(host.criSocket) };
}

/** `kubectl gantry run IMAGE --name NAME -- /bin/sh -c SCRIPT` as the editor, waited on until it runs. */
async function runShell(name: string, script: string): Promise<Container> {
  const r = await typed(editor, [
    'gantry',
    'run',
    cluster.images.web,
    '--name',
    name,
    '--',
    '/bin/sh',
    '-c',
    script,
  ]);
  assert.equal(r.code, 0, r.stderr);
  return reported(name, 'Running');
}

/** What the runtime wrote down of one run of `name` (its log file, read on the host). */
function runtimeLog(name: string, attempt: number): string[] {
  const logs = findContainerLogs(
    cluster.hosts.map((h) => agentStateDir(h.name)),
    ns,
    name,
  );
  assert.ok(logs, `the runtime keeps no log of ${name}`);
  return parseCriLog(fs.readFileSync(attemptLogFile(logs, attempt), 'utf8')).map((l) => l.text);
}

describe('kubectl gantry stop and start', { timeout: 600_000 }, () => {
  let first: Container; // sleeper's first run, as its status said

  before(async () => {
    await startGantry(cluster);
    await kubectlOk(['create', 'namespace', ns]);
    editor = await userWithRole(ns, 'editor', 'edit');
    reader = await userWithRole(ns, 'reader', 'view');
    // A shell that says when it starts and when it gets SIGTERM, then exits 7: a graceful stop.
    first = await runShell(
      'sleeper',
      `echo "${marker} started"; trap 'echo "${marker} got TERM"; exit 7' TERM; sleep 3600 & wait`,
    );
  });

  after(async () => {
    await deleteTestNamespace(ns);
  });

  it('stop sends SIGTERM and keeps the Container: Stopped, the exit its trap chose, as the runtime recorded it', async () => {
    const r = await typed(editor, ['gantry', 'stop', 'sleeper']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'sleeper\n', 'the name, once stopped, as docker stop prints it');
    const c = await get('sleeper');
    assert.equal(c.spec.stopped, true);
    assert.equal(c.spec.nodeName, first.spec.nodeName, 'still bound to its Host');
    assert.equal(c.status?.phase, 'Stopped');
    assert.equal(c.status?.exitCode, 7, 'the trap ran: SIGTERM, not SIGKILL');
    assert.equal(c.status?.containerID, first.status?.containerID);
    const ready = c.status?.conditions?.find((x) => x.type === 'Ready');
    assert.deepEqual([ready?.status, ready?.reason], ['False', 'Stopped']);

    const { cri } = criOf(c);
    try {
      const { status } = await cri.containerStatus({ containerId: first.status!.containerID! });
      assert.equal(status?.state, 'CONTAINER_EXITED', "the runtime's record: exited");
      assert.equal(status?.exitCode, 7);
      assert.equal(nanosIso(status?.finishedAt).slice(0, 19), c.status?.finishedAt?.slice(0, 19));
    } finally {
      cri.close();
    }
    const out = runtimeLog('sleeper', 0);
    assert.deepEqual(out.slice(-2), [`${marker} started`, `${marker} got TERM`], 'the process got SIGTERM');

    const ps = await typed(reader, ['gantry', 'ps']);
    assert.equal(ps.code, 0, ps.stderr);
    assert.match(ps.stdout, /^sleeper\s+\S+\s+Stopped \(7\) \d+s ago\s+0\s+host-\d/m);

    // Stopping a stopped one changes nothing and says the same.
    const again = await typed(editor, ['gantry', 'stop', 'sleeper']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, 'sleeper\n');
    assert.equal((await get('sleeper')).metadata.generation, c.metadata.generation, 'no write');
  });

  it("stays stopped through an agent restart: its runtime starts nothing for it (the runtime's own events)", async () => {
    const c = await get('sleeper');
    const { host, cri } = criOf(c);
    let runs;
    try {
      ({ runs } = await RuntimeRecorder.during({ [host]: cri }, async () => {
        await stopAgent(host);
        await startAgent(cluster, host);
        // A change to the spec that asks nothing of a stopped Container: once the restarted agent
        // reports on it, it has looked at the Container and decided.
        await kubectlOk([
          'patch',
          'containers.gantry.dev',
          'sleeper',
          '-n',
          ns,
          '--type=merge',
          '-p',
          '{"spec":{"stopGracePeriodSeconds":5}}',
        ]);
        await reported('sleeper', 'Stopped', 60_000);
      }));
    } finally {
      cri.close();
    }
    const mine = runs.filter((r) => r.labels[labels.uid] === c.metadata.uid);
    assert.deepEqual(
      mine.map((r) => ({
        id: r.id,
        finished: r.finishedAt !== undefined,
        events: r.events.map((e) => e.type),
      })),
      [{ id: c.status!.containerID!, finished: true, events: [] }],
      'only the stopped run, exited, and no event about any container of it',
    );
  });

  it('start runs it again: Running, started later, as a new runtime container; its earlier output stays', async () => {
    const r = await typed(editor, ['gantry', 'start', 'sleeper']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'sleeper\n');
    const c = await get('sleeper');
    assert.equal(c.spec.stopped, undefined);
    assert.equal(c.spec.stopGracePeriodSeconds, undefined, 'start removes the stop -t field too');
    assert.equal(c.status?.phase, 'Running');
    assert.equal(c.status?.restartCount, 1);
    assert.notEqual(c.status?.containerID, first.status?.containerID);
    assert.ok(
      c.status!.startedAt! > first.status!.startedAt!,
      `started at ${c.status?.startedAt}, after ${first.status?.startedAt}`,
    );
    const { cri } = criOf(c);
    try {
      const { status } = await cri.containerStatus({ containerId: c.status!.containerID! });
      assert.equal(status?.state, 'CONTAINER_RUNNING');
      await assert.rejects(
        cri.containerStatus({ containerId: first.status!.containerID! }),
        /not found/i,
        'the stopped runtime container was removed: its writable layer is not kept',
      );
    } finally {
      cri.close();
    }
    // Each run's log file stays, the one `logs --previous` reads included.
    assert.deepEqual(runtimeLog('sleeper', 0), [`${marker} started`, `${marker} got TERM`]);
    await eventually('the new run to say it started', () =>
      runtimeLog('sleeper', 1).includes(`${marker} started`),
    );
  });

  it("is refused, in the apiserver's words, to a user bound to view; a name that does not exist is an error", async () => {
    const r = await typed(reader, ['gantry', 'stop', 'sleeper']);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(
        `^Error from server \\(Forbidden\\): containers.gantry.dev "sleeper" is forbidden: User "system:serviceaccount:${ns}:reader" cannot patch resource "containers" in API group "gantry.dev" in the namespace "${ns}"`,
      ),
    );
    const c = await get('sleeper');
    assert.equal(c.spec.stopped, undefined);
    assert.equal(c.status?.phase, 'Running');

    const missing = await typed(editor, ['gantry', 'start', 'absent']);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'Error from server (NotFound): containers.gantry.dev "absent" not found\n');
    assert.equal(missing.stdout, '');
  });

  it('stop -t 1 kills a process that ignores SIGTERM after a second, not after its 30s grace period', async () => {
    await runShell('stubborn', `trap '' TERM; echo "${marker} ignoring TERM"; while :; do sleep 1; done`);
    const asked = Date.now();
    const r = await typed(editor, ['gantry', 'stop', '-t', '1', 'stubborn']);
    assert.equal(r.code, 0, r.stderr);
    const c = await get('stubborn');
    assert.equal(c.spec.stopGracePeriodSeconds, 1);
    assert.equal(c.status?.phase, 'Stopped');
    assert.equal(c.status?.exitCode, 137, 'SIGKILL');
    const { cri } = criOf(c);
    try {
      const { status } = await cri.containerStatus({ containerId: c.status!.containerID! });
      const ranOnMs = Number(status!.finishedAt / 1_000_000n) - asked;
      assert.ok(ranOnMs < 20_000, `killed ${ranOnMs} ms after the stop was asked: -t was not honoured`);
    } finally {
      cri.close();
    }
  });

  it("refuses a Workload's replica, saying to scale the Workload; set by hand, it is ignored and says so", async () => {
    const run = await typed(editor, [
      'gantry',
      'run',
      cluster.images.web,
      '--replicas',
      '1',
      '--name',
      'webs',
    ]);
    assert.equal(run.code, 0, run.stderr);
    const replica = await eventually(
      'the replica of webs to run',
      async () => {
        const out = await kubectlOk([
          'get',
          'containers.gantry.dev',
          '-n',
          ns,
          '-l',
          'gantry.dev/run=webs',
          '-o',
          'jsonpath={range .items[*]}{.metadata.name} {.status.phase}{"\\n"}{end}',
        ]);
        const [name, phase] = out.trim().split(' ');
        return phase === 'Running' ? name : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 1000 },
    );
    const r = await typed(editor, ['gantry', 'stop', replica]);
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      `error: container.gantry.dev/${replica} is a replica of workload.gantry.dev/webs, which decides how many ` +
        'run: scale the Workload instead (kubectl scale workload/webs --replicas=N)\n',
    );
    assert.equal((await get(replica)).spec.stopped, undefined, 'nothing was asked');

    // Set by hand (kubectl patch): the agent keeps it running and says why, and its runtime stops nothing.
    const c = await get(replica);
    const { host, cri } = criOf(c);
    let runs;
    try {
      ({ runs } = await RuntimeRecorder.during({ [host]: cri }, async () => {
        await kubectlOk([
          'patch',
          'containers.gantry.dev',
          replica,
          '-n',
          ns,
          '--type=merge',
          '-p',
          '{"spec":{"stopped":true}}',
        ]);
        const ignored = await reported(replica, 'Running', 60_000);
        assert.match(
          ignored.status?.message ?? '',
          /^spec.stopped is ignored: this Container is a replica of Workload webs/,
        );
      }));
    } finally {
      cri.close();
    }
    const mine = runs.filter((run) => run.labels[labels.uid] === c.metadata.uid);
    assert.deepEqual(
      mine.map((run) => ({ id: run.id, finished: run.finishedAt !== undefined })),
      [{ id: c.status!.containerID!, finished: false }],
      'the replica still runs, and nothing stopped it',
    );
    const warned = await kubectlOk([
      'get',
      'events',
      '-n',
      ns,
      '--field-selector',
      `reason=StopIgnored,involvedObject.name=${replica}`,
      '-o',
      'jsonpath={.items[*].type}',
    ]);
    assert.equal(warned, 'Warning');
    await kubectlOk(['delete', 'workload.gantry.dev', 'webs', '-n', ns, '--wait=true']);
  });

  it('a stopped Container is not checkpointed (no process) and moves by Restart, staying stopped', async () => {
    const stopped = await typed(editor, ['gantry', 'stop', '-t', '0', 'stubborn']);
    assert.equal(stopped.code, 0, stopped.stderr);
    const from = (await get('stubborn')).spec.nodeName!;
    const to = cluster.hosts.find((h) => h.name !== from)!.name;

    const checkpoint = await typed(editor, ['gantry', 'migrate', 'stubborn', '--to', to], 120_000);
    assert.equal(checkpoint.code, 1);
    assert.match(
      checkpoint.stderr,
      /^error: migration\.gantry\.dev\/stubborn-\w+ Failed: Container stubborn is stopped: there is no process to checkpoint/,
    );

    const r = await typed(
      editor,
      ['gantry', 'migrate', 'stubborn', '--to', to, '--mode', 'Restart'],
      180_000,
    );
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    const copy = new RegExp(`^stubborn moved from ${from} to ${to} as (stubborn-r\\w+)$`, 'm').exec(
      r.stdout,
    )?.[1];
    assert.ok(copy, r.stdout);
    const c = await get(copy);
    assert.equal(c.spec.nodeName, to);
    assert.equal(c.spec.stopped, true);
    assert.equal(c.status?.phase, 'Stopped');
    assert.equal(c.status?.message, 'spec.stopped is true: the process is not started');
    const { cri } = criOf(c);
    try {
      const { containers } = await cri.listContainers({
        filter: { labelSelector: { [labels.uid]: c.metadata.uid! } },
      });
      assert.deepEqual(containers, [], 'the copy was never started on its new Host');
    } finally {
      cri.close();
    }
    assert.equal(
      (await kubectl(['get', 'containers.gantry.dev', 'stubborn', '-n', ns])).code,
      1,
      'the source is gone',
    );
  });
});
