// `kubectl gantry drain` and `uncordon` as users type them, and kubectl's completion of `kubectl
// gantry` through kubectl_complete-gantry: the cluster's own kubectl finds both on the PATH, and
// each user is a ServiceAccount with its own token. An operator bound to a ClusterRole over Hosts
// drains host-1 (a drain that cannot finish gives up saying why, one that can moves the counter by
// checkpoint to host-2); a namespace editor is refused, as the apiserver says.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Host, Migration } from '../../src/api/v1alpha1/index.js';
import { startGantry, stopGantry } from '../../src/localcluster/gantry.js';
import { deleteTestNamespace, getObject, kubectl, kubectlOk, localCluster } from '../support/cluster.js';
import { typed, userKubeconfig, userWithRole } from '../support/users.js';
import { eventually } from '../support/wait.js';

const cluster = localCluster();
const [host1, host2] = cluster.hosts.map((h) => h.name) as [string, string];
const ns = `e2e-plugin-hosts-${process.pid}`;
const operatorRole = `gantry-e2e-plugin-hosts-${process.pid}`;
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

// kubectl_complete-gantry on the PATH, as the package installs it beside kubectl-gantry.
const completer = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-completer-'));
fs.writeFileSync(
  path.join(completer, 'kubectl_complete-gantry'),
  `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} --import tsx ` +
    `${JSON.stringify(path.join(repoRoot, 'src/cmd/kubectl_complete-gantry.ts'))} "$@"\n`,
  { mode: 0o755 },
);
process.env.PATH = `${completer}:${process.env.PATH}`;

let operator: string; // may get, list and patch Hosts, and list Containers and Migrations everywhere
let editor: string; // bound to edit in ns only
let replica: string; // web's replica, on host-1

const hostSpec = async (name: string) => (await getObject<Host>(['hosts.gantry.dev', name]))!.spec;
const patchHost = (name: string, spec: object) =>
  kubectlOk(['patch', 'hosts.gantry.dev', name, '--type=merge', '-p', JSON.stringify({ spec })]);
const drainMigrations = async () =>
  (
    await getObject<{ items: Migration[] }>([
      'migrations.gantry.dev',
      '-A',
      '-l',
      `gantry.dev/drain-host=${host1}`,
    ])
  )?.items ?? [];
const phaseOf = (name: string) =>
  kubectlOk(['get', 'container', name, '-n', ns, '-o', 'jsonpath={.status.phase}']);

describe('kubectl gantry drain, uncordon and completion', { timeout: 600_000 }, () => {
  before(async () => {
    await startGantry(cluster);
    await kubectlOk(['create', 'namespace', ns]);
    await kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: [
          {
            apiVersion: 'rbac.authorization.k8s.io/v1',
            kind: 'ClusterRole',
            metadata: { name: operatorRole },
            rules: [
              { apiGroups: ['gantry.dev'], resources: ['hosts'], verbs: ['get', 'list', 'patch'] },
              { apiGroups: ['gantry.dev'], resources: ['containers', 'migrations'], verbs: ['list'] },
            ],
          },
        ],
      }),
    });
    operator = await userKubeconfig(ns, 'operator');
    editor = await userWithRole(ns, 'editor', 'edit');
    await kubectlOk([
      'create',
      'clusterrolebinding',
      operatorRole,
      `--clusterrole=${operatorRole}`,
      `--serviceaccount=${ns}:operator`,
    ]);
    // host-2 takes no new Containers: the Workload's replica starts on host-1, and a drain of
    // host-1 has nowhere to go until uncordon. `mover`, bound to host-2 by name, is no drain's.
    await patchHost(host2, { unschedulable: true });
    const apply = (kind: string, name: string, spec: object) =>
      kubectlOk(['apply', '-f', '-'], {
        input: JSON.stringify({
          apiVersion: 'gantry.dev/v1alpha1',
          kind,
          metadata: { name, namespace: ns },
          spec,
        }),
      });
    await apply('Container', 'mover', { image: cluster.images.counter, nodeName: host2 });
    await apply('Workload', 'web', {
      replicas: 1,
      selector: { matchLabels: { app: 'web' } },
      template: { metadata: { labels: { app: 'web' } }, spec: { image: cluster.images.counter } },
      // A failed checkpoint leaves the replica running where it is.
      migrationPolicy: { mode: 'Checkpoint', fallback: 'None' },
    });
    replica = await eventually(
      'the replica of web to run on host-1, and mover on host-2',
      async () => {
        const out = await kubectlOk([
          'get',
          'containers.gantry.dev',
          '-n',
          ns,
          '-o',
          'jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.phase}{"\\n"}{end}',
        ]);
        const rows = out
          .trim()
          .split('\n')
          .map((l) => l.split(' '));
        const web = rows.find(([n, h, p]) => n!.startsWith('web-') && h === host1 && p === 'Running');
        const mover = rows.find(([n, h, p]) => n === 'mover' && h === host2 && p === 'Running');
        return web && mover ? web[0] : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 1000 },
    );
  });

  after(async () => {
    for (const h of [host1, host2])
      await patchHost(h, { drain: false, unschedulable: false }).catch(() => undefined);
    await deleteTestNamespace(ns);
    await kubectl(['delete', 'clusterrolebinding,clusterrole', operatorRole, '--ignore-not-found']);
    await stopGantry(cluster);
    fs.rmSync(completer, { recursive: true, force: true });
  });

  it("drain and uncordon are refused to a namespace editor with the apiserver's Forbidden", async () => {
    for (const verb of ['drain', 'uncordon']) {
      const r = await typed(editor, ['gantry', verb, host1]);
      assert.equal(r.code, 1, r.stdout);
      assert.match(
        r.stderr,
        new RegExp(
          `^Error from server \\(Forbidden\\): hosts\\.gantry\\.dev "${host1}" is forbidden: User ` +
            `"system:serviceaccount:${ns}:editor" cannot get resource "hosts" in API group "gantry\\.dev" at the cluster scope`,
        ),
      );
    }
    assert.equal((await hostSpec(host1)).drain, false);
    const missing = await typed(operator, ['gantry', 'drain', 'no-such-host']);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'Error from server (NotFound): hosts.gantry.dev "no-such-host" not found\n');
  });

  it("kubectl completes Container names of the user's namespace and Host names, with the user's rights", async () => {
    const logs = await typed(editor, ['__complete', 'gantry', 'logs', '']);
    assert.equal(logs.code, 0, logs.stderr);
    assert.equal(logs.stdout, `mover\n${replica}\n:4\n`);
    const prefixed = await typed(editor, ['__complete', 'gantry', 'rm', '-n', ns, 'mo']);
    assert.equal(prefixed.stdout, 'mover\n:4\n');
    // The editor may not list Hosts: nothing offered, and no error.
    assert.equal((await typed(editor, ['__complete', 'gantry', 'drain', ''])).stdout, ':4\n');
    assert.equal(
      (await typed(operator, ['__complete', 'gantry', 'drain', ''])).stdout,
      `${host1}\n${host2}\n:4\n`,
    );
    const commands = await typed(editor, ['__complete', 'gantry', 'un']);
    assert.equal(commands.stdout, 'uncordon\tLet a host take containers again\n:4\n');
  });

  it('a drain that cannot finish gives up at --timeout, naming the Container left and its Migration; the Host stays draining', async () => {
    const r = await typed(operator, ['gantry', 'drain', host1, '--timeout', '15s'], 120_000);
    console.log(r.stdout + r.stderr);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stdout, new RegExp(`^host\\.gantry\\.dev/${host1} draining\\n`));
    assert.match(
      r.stdout,
      new RegExp(
        `^moving ${ns}/${replica} \\(migration\\.gantry\\.dev/${replica}-drain-1, Checkpoint\\)$`,
        'm',
      ),
    );
    // Each failed move on stderr as it ends, then the Containers left and why.
    assert.match(
      r.stderr,
      new RegExp(
        `^error when moving ${ns}/${replica}: migration\\.gantry\\.dev/${replica}-drain-1 Failed: .*no Host can take it`,
        'm',
      ),
    );
    assert.match(
      r.stderr,
      new RegExp(
        `^error: unable to drain host "${host1}": timed out after 15s with 1 Container not moved yet:\\n` +
          `  ${ns}/${replica}: .*migration\\.gantry\\.dev/${replica}-drain-\\d+ \\w+`,
        'm',
      ),
    );
    assert.equal((await hostSpec(host1)).drain, true);
    assert.equal(await phaseOf(replica), 'Running');
  });

  it('uncordon ends a drain and a cordon, as kubectl uncordon says', async () => {
    const r = await typed(operator, ['gantry', 'uncordon', host1]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `host.gantry.dev/${host1} uncordoned\n`);
    assert.equal((await hostSpec(host1)).drain, false);
    // The moves tried while host-2 was cordoned end (failed) before host-2 takes Containers again.
    await eventually("the drain's moves to end", async () =>
      (await drainMigrations()).every((m) =>
        ['Succeeded', 'Failed', 'RolledBack'].includes(m.status?.phase ?? ''),
      ),
    );
    const two = await typed(operator, ['gantry', 'uncordon', host2]);
    assert.equal(two.stdout, `host.gantry.dev/${host2} uncordoned\n`);
    assert.equal((await hostSpec(host2)).unschedulable, false);
    const again = await typed(operator, ['gantry', 'uncordon', host2]);
    assert.equal(again.stdout, `host.gantry.dev/${host2} already uncordoned\n`);
  });

  it('drain moves the Container off, printing the move as migrate does, and returns once the Host is empty', async () => {
    // A drain counts the failed moves of earlier drains of its Host: gone, it tries afresh.
    await kubectlOk([
      'delete',
      'migrations.gantry.dev',
      '-n',
      ns,
      '-l',
      `gantry.dev/drain-host=${host1}`,
      '--wait',
    ]);
    const r = await typed(operator, ['gantry', 'drain', host1], 300_000);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines[0], `host.gantry.dev/${host1} draining`);
    assert.ok(
      lines.includes(`moving ${ns}/${replica} (migration.gantry.dev/${replica}-drain-1, Checkpoint)`),
      r.stdout,
    );
    const moved = lines.find((l) => l.startsWith(`${ns}/${replica} moved`));
    assert.match(
      moved ?? r.stdout,
      new RegExp(
        `^${ns}/${replica} moved from ${host1} to ${host2} as ${replica}-\\S+, not running for [\\d.]+s$`,
      ),
    );
    assert.equal(lines.at(-1), `host.gantry.dev/${host1} drained`);
    // The apiserver's record: nothing runs on host-1 any more, and the copy runs on host-2.
    const left = await kubectlOk([
      'get',
      'containers.gantry.dev',
      '-A',
      '--field-selector',
      `spec.nodeName=${host1}`,
      '-o',
      'jsonpath={.items[*].status.phase}',
    ]);
    assert.doesNotMatch(left, /Running|Pending|Migrating/);
    const target = /as (\S+),/.exec(moved!)![1]!;
    assert.equal(
      await kubectlOk(['get', 'container', target, '-n', ns, '-o', 'jsonpath={.spec.nodeName}']),
      host2,
    );
  });

  it('uncordon -o name prints the Host as kubectl does', async () => {
    const r = await typed(operator, ['gantry', 'uncordon', host1, '-o', 'name']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `host.gantry.dev/${host1}\n`);
    assert.deepEqual([(await hostSpec(host1)).drain, (await hostSpec(host1)).unschedulable], [false, false]);
  });
});
