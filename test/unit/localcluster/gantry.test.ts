// startGantry reuses a running controller or agent only if it was started with exactly the command
// line asked for; one started with other flags, or from another checkout, is restarted, and what
// differed is said. The comparison, the decision, and the record the decision reads. Beside Gantry
// installed in the cluster (npm start's Helm release) it starts nothing, and says how to remove it.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { decide, installedGantryConflict, isGantryCommand } from '../../../src/localcluster/gantry.js';
import {
  commandDifferences,
  commandFile,
  processCommand,
  runningDaemon,
  startDaemon,
  stopPidFile,
} from '../../../src/localcluster/proc.js';

const node = '/usr/bin/node';
const agent = (checkout: string, ...flags: string[]) => [
  node,
  '--import',
  'tsx',
  `${checkout}/src/cmd/agent.ts`,
  '--host-name=host-1',
  '--kubeconfig=/var/lib/gantry-local/kubeconfig',
  ...flags,
];

describe('commandDifferences', () => {
  it('finds none between identical command lines', () => {
    assert.deepEqual(commandDifferences(agent('/w/a', '--x=1'), agent('/w/a', '--x=1')), []);
  });

  it('names a flag only the running process has, and one only the wanted command has', () => {
    assert.deepEqual(commandDifferences(agent('/w/a', '--fence-after-seconds=4'), agent('/w/a')), [
      '--fence-after-seconds=4: only in the running one',
    ]);
    assert.deepEqual(commandDifferences(agent('/w/a'), agent('/w/a', '--renew-interval-seconds=1')), [
      '--renew-interval-seconds=1: not in the running one',
    ]);
  });

  it('gives both values of a changed flag', () => {
    assert.deepEqual(
      commandDifferences(
        agent('/w/a', '--renew-interval-seconds=2', '--x'),
        agent('/w/a', '--renew-interval-seconds=1', '--x'),
      ),
      ['--renew-interval-seconds: running --renew-interval-seconds=2; wanted --renew-interval-seconds=1'],
    );
  });

  it('shows another checkout as another entry point', () => {
    assert.deepEqual(commandDifferences(agent('/work/main'), agent('/work/wt/tests')), [
      `program and arguments: running ${node} tsx /work/main/src/cmd/agent.ts; wanted ${node} tsx /work/wt/tests/src/cmd/agent.ts`,
    ]);
  });

  it('counts a repeated flag (the later one wins) and a change of order', () => {
    const proxied = agent('/w/a', '--kubeconfig=/tmp/proxy.kubeconfig');
    assert.deepEqual(commandDifferences(agent('/w/a'), proxied), [
      '--kubeconfig: running --kubeconfig=/var/lib/gantry-local/kubeconfig; wanted --kubeconfig=/var/lib/gantry-local/kubeconfig --kubeconfig=/tmp/proxy.kubeconfig',
    ]);
    assert.deepEqual(commandDifferences(agent('/w/a', '--a=1', '--b=2'), agent('/w/a', '--b=2', '--a=1')), [
      'the same arguments in another order (a later flag wins over an earlier one)',
    ]);
  });
});

describe('decide', () => {
  const wanted = agent('/w/a', '--x=1');

  it('starts when nothing runs, reuses the same command, restarts another one with the reasons', () => {
    assert.deepEqual(decide(undefined, wanted, 'agent'), { action: 'start' });
    assert.deepEqual(decide({ pid: 10, command: [...wanted] }, wanted, 'agent'), { action: 'reuse' });
    assert.deepEqual(decide({ pid: 10, command: agent('/w/a', '--x=2') }, wanted, 'agent'), {
      action: 'restart',
      differences: ['--x: running --x=2; wanted --x=1'],
    });
    assert.deepEqual(decide({ pid: 10, command: agent('/w/b', '--x=1') }, wanted, 'agent'), {
      action: 'restart',
      differences: [
        `program and arguments: running ${node} tsx /w/b/src/cmd/agent.ts; wanted ${node} tsx /w/a/src/cmd/agent.ts`,
      ],
    });
  });

  it('leaves a PID that now names another program alone, and refuses one it cannot read', () => {
    assert.deepEqual(decide({ pid: 10, command: ['/usr/bin/sleep', '100'] }, wanted, 'agent'), {
      action: 'start',
    });
    assert.throws(() => decide({ pid: 10 }, wanted, 'agent'), /command line cannot be read/);
  });

  it('knows a Gantry process of any checkout, from source or built, by its entry point', () => {
    assert.equal(isGantryCommand(agent('/anywhere'), 'agent'), true);
    assert.equal(isGantryCommand([node, '/app/dist/cmd/controller.js'], 'controller'), true);
    assert.equal(isGantryCommand([node, '/app/dist/cmd/controller.js'], 'agent'), false);
  });
});

describe('runningDaemon', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-proc-'));
  const files = { pidFile: path.join(dir, 'sleeper.pid'), logFile: path.join(dir, 'sleeper.log') };
  after(async () => {
    await stopPidFile(files.pidFile);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reads the command line recorded next to the PID file, which is what /proc says', async () => {
    const pid = startDaemon('sleep', ['300'], files);
    assert.deepEqual(JSON.parse(fs.readFileSync(commandFile(files.pidFile), 'utf8')), ['sleep', '300']);
    assert.deepEqual(processCommand(pid), ['sleep', '300']);
    assert.deepEqual(runningDaemon(files.pidFile), { pid, command: ['sleep', '300'] });
  });

  it('does not claim a process that is not the one recorded (its PID was reused)', () => {
    fs.writeFileSync(commandFile(files.pidFile), JSON.stringify(['sleep', '999']));
    assert.equal(runningDaemon(files.pidFile), undefined);
  });

  it("falls back to /proc's command line for a process started before they were recorded", () => {
    fs.rmSync(commandFile(files.pidFile));
    const pid = Number(fs.readFileSync(files.pidFile, 'utf8'));
    assert.deepEqual(runningDaemon(files.pidFile), { pid, command: ['sleep', '300'] });
  });

  it('removes the record with the PID file when it stops the process', async () => {
    fs.writeFileSync(commandFile(files.pidFile), JSON.stringify(['sleep', '300']));
    await stopPidFile(files.pidFile);
    assert.equal(fs.existsSync(files.pidFile), false);
    assert.equal(fs.existsSync(commandFile(files.pidFile)), false);
    assert.equal(runningDaemon(files.pidFile), undefined);
  });
});

describe('installedGantryConflict', () => {
  it('has nothing to say when no agent DaemonSet of Gantry exists', () => {
    assert.equal(installedGantryConflict([]), undefined);
  });

  it('names the Helm release and how to uninstall it', () => {
    const why = installedGantryConflict([
      {
        namespace: 'gantry-system-agent',
        name: 'gantry-agent',
        release: { name: 'gantry', namespace: 'gantry-system' },
      },
    ]);
    assert.match(why ?? '', /DaemonSet gantry-agent in gantry-system-agent, Helm release gantry/);
    assert.match(
      why ?? '',
      /helm uninstall gantry --namespace gantry-system \(npm start installs it again\)$/,
    );
  });

  it('names the DaemonSet of an install without Helm', () => {
    const why = installedGantryConflict([{ namespace: 'ops', name: 'gantry-agent' }]);
    assert.match(
      why ?? '',
      /Remove it first: delete DaemonSet gantry-agent in ops and the controller's Deployment$/,
    );
  });
});
