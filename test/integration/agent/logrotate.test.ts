// Container log rotation by a real agent on a real containerd host. A Container writes numbered
// lines fast; the agent rotates its log at a small size. Recorded facts: every rotation the agent's
// log reports, the files the runtime wrote (no line lost or doubled across the rotated files and
// the reopened one), and what `npm run logs -- --tail` and `--follow` print.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { Container } from '../../../src/api/v1alpha1/index.js';
import { CriClient } from '../../../src/cri/client.js';
import {
  agentLog,
  agentStateDir,
  installCrds,
  startAgent,
  stopAgent,
} from '../../../src/localcluster/gantry.js';
import { getObject, kubectl, kubectlOk, localCluster } from '../../support/cluster.js';
import { eventually } from '../../support/wait.js';

const cluster = localCluster();
const host = cluster.hosts[1]!.name;
const cri = new CriClient(cluster.hosts[1]!.criSocket);
const ns = `logrotate-it-${process.pid}`;
const maxSize = 16 * 1024;
const maxFiles = 4;
const intervalSeconds = 1;
// The writer: 5 lines of about 150 bytes (in the CRI format) every 0.1 s, at most 50 lines a second.
const linesPerSecond = 50;
const lineBytesAtMost = 200;
// A file grows past maxSize for at most a round's wait and its work: allow three intervals.
const slack = 3 * intervalSeconds * linesPerSecond * lineBytesAtMost;
const writer = [
  'trap "exit 0" TERM INT',
  'pad=$(printf "%0100d" 0)',
  'i=0; while :; do for _ in 1 2 3 4 5; do i=$((i+1)); echo "line $i $pad"; done; sleep 0.1; done',
].join('\n');

const logSize = () => (fs.existsSync(agentLog(host)) ? fs.statSync(agentLog(host)).size : 0);

/** The rotations the agent made since `from` (a log size), as its log records each. */
function rotations(from: number, dir: string): { file: string; bytes: number; removed: number }[] {
  return fs
    .readFileSync(agentLog(host))
    .subarray(from)
    .toString('utf8')
    .split('\n')
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as { msg?: string; file?: string; bytes?: number; removed?: number }];
      } catch {
        return [];
      }
    })
    .filter((l) => l.msg === 'Rotated container log' && path.dirname(l.file ?? '') === dir)
    .map((l) => ({ file: path.basename(l.file!), bytes: l.bytes!, removed: l.removed! }));
}

const numbers = (content: string) =>
  content
    .split('\n')
    .flatMap((l) => /^\S+ stdout F line (\d+) /.exec(l)?.[1] ?? [])
    .map(Number);

/**
 * The directory's log files, oldest first, read together: retried until no rotation fell in
 * between and the current file holds a line (right after a rotation it is empty until the
 * runtime writes on in it: a runtime that never does makes this wait fail).
 */
function snapshot(dir: string): Promise<{ name: string; bytes: number; numbers: number[] }[]> {
  const list = () => {
    const names = fs.readdirSync(dir).filter((n) => n.startsWith('0.log.'));
    return [...names.sort(), '0.log'];
  };
  return eventually(
    'a read of the log files without a rotation in between, with lines in the current one',
    () => {
      const names = list();
      const contents = names.map((n) => fs.readFileSync(path.join(dir, n), 'utf8'));
      if (list().join() !== names.join() || numbers(contents.at(-1)!).length === 0) return undefined;
      return names.map((name, i) => ({
        name,
        bytes: Buffer.byteLength(contents[i]!),
        numbers: numbers(contents[i]!),
      }));
    },
  );
}

/** The line numbers `npm run logs` printed (complete lines only). */
const printedNumbers = (stdout: string) =>
  stdout
    .split('\n')
    .slice(0, -1)
    .map((l) => Number(/^line (\d+) /.exec(l)?.[1]));

const assertConsecutive = (seq: number[], what: string) => {
  for (let i = 1; i < seq.length; i++)
    assert.equal(seq[i], seq[i - 1]! + 1, `${what}: line ${seq[i - 1]} is followed by ${seq[i]}`);
};

describe('container log rotation', () => {
  before(async () => {
    await installCrds(cluster);
    await kubectlOk(['create', 'namespace', ns]);
    await startAgent(cluster, host, [
      `--container-log-max-size=${maxSize}`,
      `--container-log-max-files=${maxFiles}`,
      `--container-log-monitor-interval-seconds=${intervalSeconds}`,
    ]);
  });

  after(async () => {
    await kubectl(['delete', 'containers.gantry.dev', '--all', '-n', ns, '--wait=true']);
    await kubectl(['delete', 'namespace', ns, '--wait=false']);
    await stopAgent(host);
    cri.close();
  });

  it('keeps size x count on disk, the runtime writes on in the reopened file, logs reads across', async () => {
    const from = logSize();
    await kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'gantry.dev/v1alpha1',
        kind: 'Container',
        metadata: { name: 'chatty', namespace: ns },
        spec: { image: cluster.images.counter, nodeName: host, command: ['/bin/sh', '-c', writer] },
      }),
    });
    const running = await eventually('the Container to run', async () => {
      const c = await getObject<Container>(['containers.gantry.dev', '-n', ns, 'chatty']);
      return c?.status?.phase === 'Running' ? c : undefined;
    });
    const dir = path.join(agentStateDir(host), 'logs', `${ns}_chatty_${running.metadata.uid}`, 'container');
    // Twice as many rotations as files kept: the oldest have had to go.
    await eventually('enough rotations', () => rotations(from, dir).length >= 2 * maxFiles, {
      timeoutMs: 90_000,
    });

    const files = await snapshot(dir);
    const recorded = rotations(from, dir);
    // Size x count: every rotation at the maximum size (within one round's writing), and no more
    // than maxFiles files on disk, the rotated ones among the newest recorded.
    for (const r of recorded) {
      assert.ok(r.bytes >= maxSize && r.bytes <= maxSize + slack, `rotated at ${r.bytes} bytes`);
    }
    assert.ok(files.length <= maxFiles, `${files.length} files: ${files.map((f) => f.name).join(', ')}`);
    const rotatedOnDisk = files.slice(0, -1).map((f) => f.name);
    const newest = recorded.slice(-maxFiles).map((r) => r.file);
    for (const name of rotatedOnDisk)
      assert.ok(newest.includes(name), `${name} is one of the newest rotated`);
    for (const r of recorded.slice(0, -maxFiles)) {
      assert.ok(!fs.existsSync(path.join(dir, r.file)), `${r.file} (an old rotation) was removed`);
    }
    const total = files.reduce((sum, f) => sum + f.bytes, 0);
    assert.ok(total <= maxFiles * (maxSize + slack), `${total} bytes on disk`);

    // The runtime writes on in the reopened file, the same path: not a line lost or doubled.
    const current = files[files.length - 1]!;
    assertConsecutive(
      files.flatMap((f) => f.numbers),
      'across the rotated files and the current one',
    );
    const status = (await cri.containerStatus({ containerId: running.status!.containerID! })).status!;
    assert.equal(status.state, 'CONTAINER_RUNNING');
    assert.equal(status.logPath, path.join(dir, '0.log'));

    // The reader: the latest lines, across a rotation (more than any one file holds).
    const tail = 250;
    const mostInOneFile = Math.max(...files.map((f) => f.numbers.length));
    assert.ok(tail > mostInOneFile, `--tail ${tail} spans files (at most ${mostInOneFile} in one)`);
    const latestBefore = current.numbers[current.numbers.length - 1]!;
    const { stdout } = await promisify(execFile)(process.execPath, [
      '--import',
      'tsx',
      'src/cmd/logs.ts',
      `${ns}/chatty`,
      '--tail',
      String(tail),
      '--state-dir',
      agentStateDir(host),
    ]);
    const printed = printedNumbers(stdout);
    assert.equal(printed.length, tail);
    assertConsecutive(printed, 'npm run logs --tail');
    assert.ok(
      printed[tail - 1]! >= latestBefore,
      `printed up to ${printed[tail - 1]}, ${latestBefore} was written`,
    );

    // Following: on through rotations, into each reopened file, not a line lost or doubled.
    const follower = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cmd/logs.ts',
        `${ns}/chatty`,
        '--follow',
        '--tail=1',
        '--state-dir',
        agentStateDir(host),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let followed = '';
    follower.stdout.on('data', (d: Buffer) => (followed += d.toString('utf8')));
    try {
      await eventually('the follower to print', () => printedNumbers(followed).length > 0);
      const startedAt = rotations(from, dir).length;
      await eventually('two more rotations', () => rotations(from, dir).length >= startedAt + 2, {
        timeoutMs: 60_000,
      });
      // The lines of the newest rotated file: written before a rotation that came while following.
      const rotatedLast = (await snapshot(dir)).at(-2)!.numbers.at(-1)!;
      await eventually(`the follower to print past line ${rotatedLast}`, () =>
        printedNumbers(followed).some((n) => n > rotatedLast),
      );
    } finally {
      follower.kill();
    }
    const seen = printedNumbers(followed);
    assertConsecutive(seen, 'npm run logs --follow');
  });
});
