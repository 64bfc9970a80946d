// `kubectl gantry` (run, ps, logs, exec, inspect, rm, images, pull, migrate) as a user types them:
// the cluster's own kubectl finds the plugin on the PATH, and each user is a ServiceAccount with
// its own token, so the apiserver authenticates them and RBAC decides. Logs travel apiserver ->
// Gantry's aggregated API server (which asks the apiserver whether the user may get
// containers/log) -> the agent of the Container's Host, which reads the runtime's log files; an
// exec's WebSocket goes the same way (create containers/exec) on to the runtime's streaming server.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CriClient } from '../../src/cri/client.js';
import { attemptLogFile, findContainerLogs, parseCriLog } from '../../src/agent/logs.js';
import { startApiserver, stopApiserver } from '../../src/localcluster/cluster.js';
import { agentStateDir, startGantry } from '../../src/localcluster/gantry.js';
import {
  apiserverHasFrontProxy,
  startSubresources,
  stopSubresources,
  subresourcesPorts,
} from '../../src/localcluster/subresources.js';
import { kubectl, kubectlOk, localCluster } from '../support/cluster.js';
import { installPlugin, typed, userKubeconfig, userWithRole } from '../support/users.js';
import { eventually } from '../support/wait.js';

const cluster = localCluster();
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const ns = `e2e-plugin-${process.pid}`;
const otherNs = `e2e-plugin-other-${process.pid}`;
const rbacName = `gantry-e2e-plugin-${process.pid}`;
// Only this Container can print it: the logs read below are its own output.
const marker = `plugin-e2e-${process.pid}-${Date.now()}`;

const pluginDir = installPlugin();

/**
 * What the chart grants: `view` may list Containers and get their log (aggregated into it), and
 * every authenticated user may reach the aggregated API, whose own check is the one that counts.
 */
function rbac(): string {
  const meta = (name: string, labels: Record<string, string> = {}) => ({ name, labels });
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'List',
    items: [
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: meta(`${rbacName}-view`, { 'rbac.authorization.k8s.io/aggregate-to-view': 'true' }),
        rules: [
          {
            apiGroups: ['gantry.dev'],
            resources: ['containers', 'migrations'],
            verbs: ['get', 'list', 'watch'],
          },
          { apiGroups: ['gantry.dev'], resources: ['containers/log'], verbs: ['get'] },
        ],
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: meta(`${rbacName}-edit`, { 'rbac.authorization.k8s.io/aggregate-to-edit': 'true' }),
        rules: [
          {
            apiGroups: ['gantry.dev'],
            resources: ['containers', 'workloads', 'migrations', 'images'],
            verbs: ['get', 'list', 'watch', 'create', 'delete'],
          },
          { apiGroups: ['gantry.dev'], resources: ['containers/log'], verbs: ['get'] },
          { apiGroups: ['gantry.dev'], resources: ['containers/exec'], verbs: ['create'] },
        ],
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: meta(`${rbacName}-access`),
        rules: [
          { apiGroups: ['subresources.gantry.dev'], resources: ['containers/log'], verbs: ['get'] },
          {
            apiGroups: ['subresources.gantry.dev'],
            resources: ['containers/exec'],
            verbs: ['get', 'create'],
          },
          { apiGroups: ['subresources.gantry.dev'], resources: ['containermetrics'], verbs: ['get', 'list'] },
        ],
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: meta(`${rbacName}-access`),
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: `${rbacName}-access` },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'system:authenticated' }],
      },
    ],
  });
}

function containerManifest(name: string): string {
  return JSON.stringify({
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Container',
    metadata: { name, namespace: ns },
    spec: {
      image: cluster.images.web,
      command: ['/bin/sh', '-c'],
      // One line on stdout and one on stderr, then a numbered line a second, for `logs -f`.
      args: [
        `echo "${marker} stdout"; echo "${marker} stderr" >&2; ` +
          `i=0; while :; do i=$((i+1)); echo "${marker} tick $i"; sleep 1; done`,
      ],
    },
  });
}

let remoteId: Promise<string> | undefined;
/** The runtime ID of `remote`, a Container on the second host (created once). */
function remoteContainer(): Promise<string> {
  remoteId ??= (async () => {
    await kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'gantry.dev/v1alpha1',
        kind: 'Container',
        metadata: { name: 'remote', namespace: ns },
        spec: { image: cluster.images.web, nodeName: cluster.hosts[1]!.name },
      }),
    });
    return eventually(
      'remote to run',
      async () => {
        const out = await kubectlOk([
          'get',
          'container',
          'remote',
          '-n',
          ns,
          '-o',
          'jsonpath={.status.phase} {.status.containerID}',
        ]);
        const [phase, id] = out.split(' ');
        return phase === 'Running' && id ? id : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 1000 },
    );
  })();
  return remoteId;
}

/** The runtime's log file of talker's first run, on whichever host it runs. */
function recordedLog(): string {
  const logs = findContainerLogs(
    cluster.hosts.map((h) => agentStateDir(h.name)),
    ns,
    'talker',
  );
  assert.ok(logs, 'the runtime keeps no log of talker');
  return attemptLogFile(logs, 0);
}

let reader: string; // bound to view in ns
let stranger: string; // a ServiceAccount of ns with no rights there
let outsider: string; // bound to view in another namespace only
let editor: string; // bound to edit in ns

describe('kubectl gantry', { timeout: 600_000 }, () => {
  before(async () => {
    // An apiserver started before controlplane.ts gave it a front proxy cannot pass users on to
    // an aggregated API: restart it (as the apiserver-restart test does) with this checkout's flags.
    if (!(await apiserverHasFrontProxy(cluster))) {
      await stopApiserver();
      await startApiserver();
    }
    await startGantry(cluster);
    await startSubresources(cluster);
    for (const n of [ns, otherNs]) await kubectlOk(['create', 'namespace', n]);
    await kubectlOk(['apply', '-f', '-'], { input: rbac() });
    reader = await userWithRole(ns, 'reader', 'view');
    stranger = await userKubeconfig(ns, 'stranger');
    outsider = await userWithRole(otherNs, 'outsider', 'view');
    editor = await userWithRole(ns, 'editor', 'edit');
    await kubectlOk(['apply', '-f', '-'], { input: containerManifest('talker') });
    await eventually(
      'Container talker to run',
      async () => {
        const out = await kubectlOk([
          'get',
          'container',
          'talker',
          '-n',
          ns,
          '-o',
          'jsonpath={.status.phase}',
        ]);
        return out === 'Running';
      },
      { timeoutMs: 120_000, intervalMs: 1000 },
    );
  });

  after(async () => {
    await stopSubresources(cluster);
    for (const n of [ns, otherNs]) await kubectl(['delete', 'namespace', n, '--wait=false']);
    await kubectl([
      'delete',
      'clusterrole',
      `${rbacName}-view`,
      `${rbacName}-edit`,
      `${rbacName}-access`,
      '--ignore-not-found',
    ]);
    await kubectl(['delete', 'clusterrolebinding', `${rbacName}-access`, '--ignore-not-found']);
  });

  it('the aggregated API server listens on loopback only; the apiserver reaches it through the DNAT rule', () => {
    // The APIService is Available (before), so the apiserver got through; here, where to.
    for (const port of Object.values(subresourcesPorts)) {
      const listening = execFileSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' })
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => l.trim().split(/\s+/)[3]);
      assert.deepEqual(listening, [`127.0.0.1:${port}`], `sockets listening on port ${port}`);
    }
  });

  it("ps lists the namespace's Containers for a user who may list them, as docker ps does", async () => {
    const r = await typed(reader, ['gantry', 'ps']);
    assert.equal(r.code, 0, r.stderr);
    const [header, ...rows] = r.stdout.trimEnd().split('\n');
    assert.match(header!, /^NAME\s+IMAGE\s+STATUS\s+RESTARTS\s+HOST\s+AGE$/);
    assert.equal(rows.length, 1, r.stdout);
    assert.match(
      rows[0]!,
      new RegExp(`^talker\\s+${cluster.images.web.replace(/[.]/g, '\\.')}\\s+Up \\S+\\s+0\\s+host-\\d`),
    );
  });

  it('ps is refused, saying why, to a user of another namespace', async () => {
    const r = await typed(outsider, ['gantry', 'ps', '-n', ns]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(
        `Error from server \\(Forbidden\\): .*"system:serviceaccount:${otherNs}:outsider" cannot list resource "containers" in API group "gantry.dev" in the namespace "${ns}"`,
      ),
    );
  });

  it("logs gives a user bound to view the Container's own output, stdout and stderr", async () => {
    // The runtime records the two streams in the order it reads them: wait for both.
    const r = await eventually('logs to show the line on stderr and the first tick', async () => {
      const res = await typed(reader, ['gantry', 'logs', 'talker']);
      const seen = [`${marker} stderr\n`, `${marker} tick 1\n`].every((l) => res.stdout.includes(l));
      return res.code === 0 && seen ? res : undefined;
    });
    // The runtime's own record, read after: what logs printed is its beginning, line for line
    // (stdout and stderr in the order the runtime wrote them down).
    const recorded = parseCriLog(fs.readFileSync(recordedLog(), 'utf8')).map((l) => `${l.text}\n`);
    assert.equal(r.stdout, recorded.slice(0, r.stdout.split('\n').length - 1).join(''));
    for (const stream of ['stdout', 'stderr'])
      assert.match(r.stdout, new RegExp(`^${marker} ${stream}$`, 'm'));
  });

  it("logs --tail N gives the last N lines, with --timestamps the runtime's time of each", async () => {
    const r = await typed(reader, ['gantry', 'logs', 'talker', '--tail', '2', '--timestamps']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 2, r.stdout);
    // Two lines in a row of the runtime's record, read after, which can only have grown since.
    const recorded = parseCriLog(fs.readFileSync(recordedLog(), 'utf8')).map((l) => `${l.time} ${l.text}`);
    const at = recorded.indexOf(lines[0]!);
    assert.ok(at >= 0, `${lines[0]} is not in the runtime's record`);
    assert.deepEqual(recorded.slice(at, at + 2), lines);
  });

  it('logs -f goes on with what the Container writes after it started', async () => {
    const child = spawn(
      path.join(cluster.binDir, 'kubectl'),
      ['gantry', 'logs', '-f', '--tail', '1', 'talker'],
      {
        cwd: repoRoot,
        env: { ...process.env, PATH: `${pluginDir}:${process.env.PATH}`, KUBECONFIG: reader },
      },
    );
    let out = '';
    child.stdout.on('data', (d) => (out += String(d)));
    try {
      const ticks = await eventually(
        'three lines followed',
        () => {
          const t = [...out.matchAll(new RegExp(`${marker} tick (\\d+)\\n`, 'g'))].map((m) => Number(m[1]));
          return t.length >= 3 ? t : undefined;
        },
        { timeoutMs: 20_000 },
      );
      // One line from the tail, then each new one as the Container writes it: consecutive.
      assert.deepEqual(ticks.slice(0, 3), [ticks[0]!, ticks[0]! + 1, ticks[0]! + 2]);
    } finally {
      child.kill();
    }
  });

  it('logs is refused, saying why, to a user of the namespace without the right', async () => {
    const r = await typed(stranger, ['gantry', 'logs', 'talker']);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(
        `^Error from server \\(Forbidden\\): User "system:serviceaccount:${ns}:stranger" cannot get resource "containers/log" in API group "gantry.dev" in the namespace "${ns}"`,
      ),
    );
    assert.doesNotMatch(r.stdout + r.stderr, new RegExp(marker));
  });

  it('logs is refused, saying why, to a user of another namespace', async () => {
    const r = await typed(outsider, ['gantry', 'logs', 'talker', '-n', ns]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(
        `^Error from server \\(Forbidden\\): User "system:serviceaccount:${otherNs}:outsider" cannot get resource "containers/log" in API group "gantry.dev" in the namespace "${ns}"`,
      ),
    );
    assert.doesNotMatch(r.stdout + r.stderr, new RegExp(marker));
  });

  it('exec runs a command in a Container on the other host and exits with its exit code', async () => {
    const remote = await remoteContainer();
    const r = await typed(editor, [
      'gantry',
      'exec',
      'remote',
      '--',
      '/bin/sh',
      '-c',
      `echo ${marker} > /tmp/exec-proof; echo out; echo err >&2; exit 3`,
    ]);
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stdout, 'out\n');
    assert.equal(r.stderr, 'err\n');
    // The runtime of that host ran it in that container: the file is there, read through CRI.
    const cri = new CriClient(cluster.hosts[1]!.criSocket);
    try {
      const read = await cri.execSync({ containerId: remote, cmd: ['cat', '/tmp/exec-proof'], timeout: 10 });
      assert.equal(String(read.stdout), `${marker}\n`);
    } finally {
      cri.close();
    }
    const missing = await typed(editor, ['gantry', 'exec', 'remote', '--', '/no/such/program']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /no such file or directory/);
  });

  it('exec -it gives the command a terminal that echoes what is typed', async () => {
    await remoteContainer();
    // `script` runs kubectl on a pseudo-terminal of its own and types what we write into it.
    const child = spawn(
      'script',
      ['-qec', `${path.join(cluster.binDir, 'kubectl')} gantry exec -it remote -- /bin/sh`, '/dev/null'],
      {
        cwd: repoRoot,
        env: { ...process.env, PATH: `${pluginDir}:${process.env.PATH}`, KUBECONFIG: editor, TERM: 'dumb' },
      },
    );
    let out = '';
    child.stdout.on('data', (d) => (out += String(d)));
    child.stderr.on('data', (d) => (out += String(d)));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    try {
      child.stdin.write('tty; echo $((6 * 7))\n');
      await eventually('the answer', () => /^42\r?$/m.test(out), { timeoutMs: 30_000 });
      child.stdin.write('exit 5\n');
      assert.equal(await exited, 5, out);
    } finally {
      child.kill();
    }
    assert.match(out, /tty; echo \$\(\(6 \* 7\)\)/, 'the terminal echoes the typed line');
    assert.match(out, /^\/dev\/pts\/\d+\r?$/m, 'the command has a terminal');
  });

  it('exec is refused, saying why, to a user bound to view and to a user of another namespace', async () => {
    await remoteContainer();
    for (const [who, user, where] of [
      [`${ns}:reader`, reader, []],
      [`${otherNs}:outsider`, outsider, ['-n', ns]],
    ] as const) {
      const r = await typed(user, ['gantry', 'exec', ...where, 'remote', '--', 'touch', '/tmp/refused']);
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        new RegExp(
          `^Error from server \\(Forbidden\\): User "system:serviceaccount:${who}" cannot create resource "containers/exec" in API group "gantry.dev" in the namespace "${ns}"`,
        ),
      );
    }
    const cri = new CriClient(cluster.hosts[1]!.criSocket);
    try {
      const check = await cri.execSync({
        containerId: await remoteContainer(),
        cmd: ['test', '-e', '/tmp/refused'],
        timeout: 10,
      });
      assert.equal(check.exitCode, 1, 'a refused exec ran nothing');
    } finally {
      cri.close();
    }
  });

  it('top shows the CPU and memory each container uses, from its host, for a user bound to view', async () => {
    const spec = (name: string, s: Record<string, unknown>) =>
      JSON.stringify({
        apiVersion: 'gantry.dev/v1alpha1',
        kind: 'Container',
        metadata: { name, namespace: ns },
        spec: s,
      });
    // One spins on a CPU, the other holds 24 MiB more than a counter needs.
    await kubectlOk(['apply', '-f', '-'], {
      input: spec('spinner', {
        image: cluster.images.web,
        command: ['/bin/sh', '-c', 'while :; do :; done'],
        nodeName: cluster.hosts[0]!.name,
      }),
    });
    await kubectlOk(['apply', '-f', '-'], {
      input: spec('holder', {
        image: cluster.images.counter,
        env: [{ name: 'HOLD_MB', value: '24' }],
        nodeName: cluster.hosts[1]!.name,
      }),
    });
    try {
      type Metrics = {
        metadata: { name: string };
        host: string;
        timestamp: string;
        usage: { cpu: string; memory: string };
      };
      const figures = await eventually(
        'figures with a CPU rate for both',
        async () => {
          const r = await typed(reader, ['gantry', 'top', 'spinner', 'holder', '-o', 'json']);
          if (r.code !== 0) return undefined;
          const items = (JSON.parse(r.stdout) as { items: Metrics[] }).items;
          const byName = new Map(items.map((i) => [i.metadata.name, i]));
          const [spinner, holder] = [byName.get('spinner'), byName.get('holder')];
          return spinner && holder && spinner.usage.cpu !== '0m' ? { spinner, holder } : undefined;
        },
        { timeoutMs: 90_000, intervalMs: 2000 },
      );
      assert.equal(figures.spinner.host, cluster.hosts[0]!.name);
      assert.equal(figures.holder.host, cluster.hosts[1]!.name);
      assert.ok(parseInt(figures.spinner.usage.cpu) >= 100, `spinner uses ${figures.spinner.usage.cpu}`);
      const held = parseInt(figures.holder.usage.memory);
      assert.ok(held >= 24 && held < 64, `holder uses ${figures.holder.usage.memory}`);
      assert.ok(Date.now() - Date.parse(figures.holder.timestamp) < 60_000, 'a recent sample');

      const r = await typed(reader, ['gantry', 'top']);
      assert.equal(r.code, 0, r.stderr);
      const [header, ...rows] = r.stdout.trimEnd().split('\n');
      assert.match(header!, /^NAME\s+CPU\(cores\)\s+MEMORY\(bytes\)\s+HOST$/);
      assert.ok(
        rows.some((row) => new RegExp(`^holder\\s+\\d+m\\s+\\d+Mi\\s+${cluster.hosts[1]!.name}$`).test(row)),
        r.stdout,
      );
    } finally {
      await kubectlOk(['delete', 'container', 'spinner', 'holder', '-n', ns, '--wait=false']);
    }
    const refused = await typed(outsider, ['gantry', 'top', '-n', ns]);
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      new RegExp(
        `^Error from server \\(Forbidden\\): User "system:serviceaccount:${otherNs}:outsider" cannot list resource "containers" in API group "gantry.dev" in the namespace "${ns}"`,
      ),
    );
  });

  /** The phase of a Container of ns, as the admin sees it. */
  const phaseOf = async (name: string) =>
    kubectlOk(['get', 'container', name, '-n', ns, '-o', 'jsonpath={.status.phase}']);

  it('run starts a Container with ports, environment and a command, as docker run does; inspect shows it; rm removes it', async () => {
    const run = await typed(editor, [
      'gantry',
      'run',
      cluster.images.web,
      '--name',
      'runner',
      '-p',
      '8080',
      '-e',
      `GREETING=${marker}-hello`,
      '--',
      '/bin/sh',
      '-c',
      'echo "$GREETING"; trap "exit 0" TERM; sleep 600 & wait',
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'container.gantry.dev/runner created\n');
    await eventually('runner to run', async () => (await phaseOf('runner')) === 'Running', {
      timeoutMs: 120_000,
      intervalMs: 1000,
    });
    const inspected = await typed(editor, ['gantry', 'inspect', 'runner']);
    assert.equal(inspected.code, 0, inspected.stderr);
    const c = JSON.parse(inspected.stdout) as {
      spec: {
        image: string;
        args: string[];
        ports: { containerPort: number }[];
        env: { name: string; value: string }[];
      };
      status: { phase: string };
    };
    assert.equal(c.spec.image, cluster.images.web);
    assert.deepEqual(c.spec.args, [
      '/bin/sh',
      '-c',
      'echo "$GREETING"; trap "exit 0" TERM; sleep 600 & wait',
    ]);
    assert.deepEqual(
      c.spec.ports.map((p) => p.containerPort),
      [8080],
    );
    assert.deepEqual(c.spec.env, [{ name: 'GREETING', value: `${marker}-hello` }]);
    assert.equal(c.status.phase, 'Running');
    await eventually(
      'its output',
      async () => (await typed(editor, ['gantry', 'logs', 'runner'])).stdout === `${marker}-hello\n`,
    );

    const removed = await typed(editor, ['gantry', 'rm', '--wait', 'runner']);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(removed.stdout, 'container.gantry.dev "runner" deleted\n');
    assert.equal(
      (await kubectl(['get', 'container', 'runner', '-n', ns])).code,
      1,
      'gone once rm --wait returns',
    );
    const again = await typed(editor, ['gantry', 'rm', 'runner']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /Error from server \(NotFound\): containers.gantry.dev "runner" not found/);
  });

  it('run --replicas N makes a Workload of N Containers', async () => {
    const r = await typed(editor, ['gantry', 'run', cluster.images.web, '--replicas', '2', '--name', 'webs']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'workload.gantry.dev/webs created\n');
    await eventually(
      'two replicas running',
      async () => {
        const phases = await kubectlOk([
          'get',
          'containers',
          '-n',
          ns,
          '-l',
          'gantry.dev/run=webs',
          '-o',
          'jsonpath={.items[*].status.phase}',
        ]);
        return phases === 'Running Running';
      },
      { timeoutMs: 120_000, intervalMs: 1000 },
    );
    await kubectlOk(['delete', 'workload', 'webs', '-n', ns, '--wait=true']);
  });

  it('run and rm are refused, saying why, to a user bound to view; run with a bad flag says what is wrong', async () => {
    const run = await typed(reader, ['gantry', 'run', cluster.images.web, '--name', 'nope']);
    assert.equal(run.code, 1);
    assert.match(
      run.stderr,
      new RegExp(
        `^Error from server \\(Forbidden\\): .*"system:serviceaccount:${ns}:reader" cannot create resource "containers"`,
      ),
    );
    const rm = await typed(reader, ['gantry', 'rm', 'talker']);
    assert.equal(rm.code, 1);
    assert.match(rm.stderr, /cannot delete resource "containers"/);
    assert.equal(await phaseOf('talker'), 'Running');
    const bad = await typed(editor, ['gantry', 'run', cluster.images.web, '-p', 'http']);
    assert.equal(bad.code, 1);
    assert.match(
      bad.stderr,
      /^error: invalid port "http": "http" is not a port: ports are 1-65535; give \[HOST_IP:\]\[HOST_PORT:\]PORT\[\/udp\]/,
    );
  });

  it('migrate moves a Container to the other host, printing its phases and how long it did not run', async () => {
    await kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'gantry.dev/v1alpha1',
        kind: 'Container',
        metadata: { name: 'mover', namespace: ns },
        spec: { image: cluster.images.counter, nodeName: cluster.hosts[0]!.name },
      }),
    });
    await eventually('mover to run', async () => (await phaseOf('mover')) === 'Running', {
      timeoutMs: 120_000,
      intervalMs: 1000,
    });
    const to = cluster.hosts[1]!.name;
    // A follower started before the move goes on with the copy on the other host.
    const follower = spawn(path.join(cluster.binDir, 'kubectl'), ['gantry', 'logs', '-f', 'mover'], {
      cwd: repoRoot,
      env: { ...process.env, PATH: `${pluginDir}:${process.env.PATH}`, KUBECONFIG: reader },
    });
    let followed = '';
    let notes = '';
    follower.stdout.on('data', (d) => (followed += String(d)));
    follower.stderr.on('data', (d) => (notes += String(d)));
    const counts = () => [...followed.matchAll(/^count (\d+)$/gm)].map((m) => Number(m[1]));
    await eventually('the follower to print a count', () => counts().length > 0, { timeoutMs: 30_000 });
    const r = await typed(editor, ['gantry', 'migrate', 'mover', '--to', to], 180_000);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^migration\.gantry\.dev\/mover-\w+ created$/);
    assert.match(
      lines.at(-1)!,
      new RegExp(
        `^mover moved from ${cluster.hosts[0]!.name} to ${to} as (mover-\\S+), not running for [\\d.]+s$`,
      ),
    );
    const target = /as (mover-\S+),/.exec(lines.at(-1)!)![1]!;
    assert.equal(
      await kubectlOk(['get', 'container', target, '-n', ns, '-o', 'jsonpath={.spec.nodeName}']),
      to,
    );
    try {
      // The copy's own log, read after: the follower printed its lines too, and still runs.
      const copyLog = await eventually('two counts of the copy', async () => {
        const res = await typed(reader, ['gantry', 'logs', target]);
        return res.code === 0 && res.stdout.split('\n').length > 2 ? res.stdout : undefined;
      });
      const firstOfCopy = /^count (\d+)$/m.exec(copyLog)![1]!;
      await eventually("the follower to print the copy's lines", () =>
        counts().includes(Number(firstOfCopy) + 1),
      );
      assert.match(notes, new RegExp(`^mover moved; following ${target}$`, 'm'));
      assert.equal(follower.exitCode, null, 'the follower still runs');
      // The count went on where the checkpoint left it: the copy's first is past the source's first.
      assert.ok(Number(firstOfCopy) > counts()[0]!, `copy began at ${firstOfCopy}: ${counts().join(' ')}`);
    } finally {
      follower.kill();
    }
    const failed = await typed(editor, ['gantry', 'migrate', 'absent']);
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /^error: migration\.gantry\.dev\/absent-\w+ Failed: /);
  });

  it('pull puts an image on every host and images lists it, as docker pull and docker images do', async () => {
    const image = cluster.images.web2;
    const r = await typed(editor, ['gantry', 'pull', image, '--name', 'web2'], 180_000);
    assert.equal(r.code, 0, r.stderr);
    const [created, pulled] = r.stdout.trimEnd().split('\n');
    assert.equal(created, 'image.gantry.dev/web2 created');
    const digest = new RegExp(
      `^${image.replace(/[.]/g, '\\.')}: (sha256:[0-9a-f]{64}) on 2 of 2 hosts$`,
    ).exec(pulled!)?.[1];
    assert.ok(digest, pulled);
    // The runtimes' own records: each host holds that digest.
    for (const h of cluster.hosts) {
      const cri = new CriClient(h.criSocket);
      try {
        const held = await cri.imageStatus({ image: { image } });
        assert.ok(
          held.image?.repoDigests.some((d) => d.endsWith(`@${digest}`)),
          `${h.name} does not hold ${digest}`,
        );
      } finally {
        cri.close();
      }
    }
    const list = await typed(reader, ['gantry', 'images']);
    assert.equal(list.code, 0, list.stderr);
    const [header, ...rows] = list.stdout.trimEnd().split('\n');
    assert.match(header!, /^NAME\s+REPOSITORY\s+TAG\s+DIGEST\s+HOSTS\s+SIZE\s+AGE$/);
    assert.equal(rows.length, 1, list.stdout);
    assert.match(
      rows[0]!,
      new RegExp(`^web2\\s+\\S+/gantry/web\\s+2\\s+${digest.slice(7, 19)}\\s+2/2\\s+\\d`),
    );

    const absent = await typed(editor, [
      'gantry',
      'pull',
      image.replace(':2', ':no-such-tag'),
      '--name',
      'absent',
    ]);
    assert.equal(absent.code, 1);
    assert.match(absent.stderr, /^error: \S+:no-such-tag: \w+: /);
  });
});
