// `kubectl gantry build` as users type it (docker build -t TAG PATH), on the local cluster's
// builder host (BuildKit beside host-1's agent): a directory with a text file, a binary file, a
// file its .dockerignore leaves out and a build argument is built and pushed, the command prints
// the Image's digest, and a Container run from that digest shows what the Dockerfile made of the
// files. The same directory again makes no new Build (a watch of Builds records none); a failing
// RUN step exits 1 naming the step and its output; a user bound to `view` may not build.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Build, Image } from '../../src/api/v1alpha1/index.js';
import { attemptLogFile, findContainerLogs, parseCriLog } from '../../src/agent/logs.js';
import { agentStateDir, startGantry } from '../../src/localcluster/gantry.js';
import { deleteTestNamespace, getObject, kubectlOk, localCluster } from '../support/cluster.js';
import { typed, userWithRole } from '../support/users.js';
import { eventually } from '../support/wait.js';
import { WatchRecorder } from '../support/watch.js';

const cluster = localCluster();
const ns = `e2e-plugin-build-${process.pid}`;
const repository = `${cluster.registry}/${ns}/app`;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-plugin-build-'));
const binary = Buffer.from([0x00, 0xff, 0x10, 0x80, 0x7f, 0xfe, 0x00, 0x01]);
const builderTimeout = 300_000;

let editor: string; // bound to edit in ns
let reader: string; // bound to view in ns

/** A context directory here: the files given, by relative path. */
function contextDir(name: string, files: Record<string, string | Buffer>): string {
  const dir = path.join(work, name);
  for (const [file, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), content);
  }
  return dir;
}

const app = () =>
  contextDir('app', {
    Dockerfile: [
      `FROM ${cluster.images.web}`,
      'ARG NOTE',
      'COPY . /ctx/',
      `RUN echo "$NOTE" > /ctx/note && sha256sum /ctx/data.bin | cut -c1-64 > /ctx/data.sha256`,
    ].join('\n'),
    '.dockerignore': 'local-only.txt\n',
    'src/hello.txt': 'hello from a nested file\n',
    'data.bin': binary,
    'local-only.txt': 'never sent',
  });

describe('kubectl gantry build', { timeout: 900_000 }, () => {
  before(async () => {
    await startGantry(cluster);
    await kubectlOk(['create', 'namespace', ns]);
    editor = await userWithRole(ns, 'editor', 'edit');
    reader = await userWithRole(ns, 'reader', 'view');
  });

  after(async () => {
    await deleteTestNamespace(ns);
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('builds a directory, prints the digest, and the image holds what the Dockerfile made of the files', async () => {
    const tag = `${repository}:1`;
    const r = await typed(
      editor,
      ['gantry', 'build', app(), '-t', tag, '--build-arg', 'NOTE=built by kubectl gantry', '-n', ns],
      builderTimeout,
    );
    assert.equal(r.code, 0, r.stderr);
    const image = (await getObject<Image>(['images.gantry.dev', 'app', '-n', ns]))!;
    const digest = image.status?.digest;
    assert.match(digest ?? '', /^sha256:[0-9a-f]{64}$/);
    assert.match(r.stdout, /^image\.gantry\.dev\/app applied \(4 files, /, 'the ignored file is not counted');
    const last = `${tag}: ${digest} (Build ${image.status?.build} on host-1 in `;
    assert.ok(
      r.stdout.split('\n').at(-2)?.startsWith(last),
      `the last line names the digest and the Build: ${r.stdout}`,
    );
    const b = (await getObject<Build>(['builds.gantry.dev', image.status!.build!, '-n', ns]))!;
    assert.deepEqual(
      Object.keys(b.spec.context.binaryFiles ?? {}),
      ['data.bin'],
      'the binary file went as base64',
    );
    assert.equal(b.spec.context.files?.['local-only.txt'], undefined, '.dockerignore left it out');

    const run = await typed(editor, [
      'gantry',
      'run',
      `${repository}@${digest}`,
      '--name',
      'show',
      '-n',
      ns,
      '--',
      '/bin/sh',
      '-c',
      'cat /ctx/note /ctx/data.sha256 /ctx/src/hello.txt; ls /ctx; sleep 3600',
    ]);
    assert.equal(run.code, 0, run.stderr);
    // What it printed, as its runtime wrote it down on its Host.
    const lines = await eventually(
      'the built image to print what it holds',
      () => {
        const logs = findContainerLogs(
          cluster.hosts.map((h) => agentStateDir(h.name)),
          ns,
          'show',
        );
        const file = logs && attemptLogFile(logs, 0);
        const text =
          file && fs.existsSync(file) ? parseCriLog(fs.readFileSync(file, 'utf8')).map((l) => l.text) : [];
        return text.includes('hello from a nested file') ? text : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 1000 },
    );
    const logs = lines.join('\n');
    assert.equal(lines[0], 'built by kubectl gantry', 'the build argument reached the RUN step');
    assert.equal(
      lines[1],
      createHash('sha256').update(binary).digest('hex'),
      'the binary file, byte for byte',
    );
    assert.ok(lines.includes('data.bin') && lines.includes('src'), logs);
    assert.ok(!lines.includes('local-only.txt'), `the ignored file is not in the image: ${logs}`);
  });

  it('builds nothing again for the same directory, and prints the same digest', async () => {
    const builds = await WatchRecorder.start<Build>(`/apis/gantry.dev/v1alpha1/namespaces/${ns}/builds`);
    try {
      const before = (await getObject<Image>(['images.gantry.dev', 'app', '-n', ns]))!;
      const r = await typed(
        editor,
        [
          'gantry',
          'build',
          app(),
          '-t',
          `${repository}:1`,
          '--build-arg',
          'NOTE=built by kubectl gantry',
          '-n',
          ns,
        ],
        builderTimeout,
      );
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.includes(`${repository}:1: ${before.status?.digest} `), r.stdout);
      const b = (await getObject<Build>(['builds.gantry.dev', before.status!.build!, '-n', ns]))!;
      assert.equal(b.status?.attempts, 1, 'the one Build ran once');
    } finally {
      await builds.stop();
    }
    assert.deepEqual(
      builds.events.filter((e) => e.type === 'ADDED').map((e) => e.object.metadata.name),
      [],
      'no Build was made',
    );
  });

  it('exits 1 with the failing step and its output when a RUN step fails', async () => {
    const dir = contextDir('broken', {
      Dockerfile: `FROM ${cluster.images.web}\nRUN echo "${ns} is about to fail" && exit 3\n`,
    });
    const r = await typed(
      editor,
      ['gantry', 'build', dir, '-t', `${repository}:broken`, '--name', 'broken', '-n', ns],
      builderTimeout,
    );
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /BuildFailed/);
    assert.match(r.stderr, /RUN echo/, 'the failing step');
    assert.match(r.stderr, new RegExp(`${ns} is about to fail`), "the step's last output");
  });

  it('refuses a user bound to view, as the apiserver does', async () => {
    const r = await typed(reader, ['gantry', 'build', app(), '-t', `${repository}:2`, '-n', ns]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Error from server \(Forbidden\)/);
  });
});
