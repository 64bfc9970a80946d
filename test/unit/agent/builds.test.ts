// The agent's build runner with a stand-in buildctl (a shell script): what it reports for a
// success and a failure, the build secret written for buildctl and gone afterwards, a missing
// Secret reported as Pending, a Build deleted during its run leaving no files, and after an agent
// restart neither a second run beside a buildctl still running (found by its PID and its command
// line) nor a run again of one that ended before its status was written, nor a run again when the
// cache lags behind the result's write.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import type { V1Secret } from '@kubernetes/client-node';
import type { Build, BuildStatus } from '../../../src/api/v1alpha1/index.js';
import { BuildRunner } from '../../../src/agent/builds.js';
import { Store } from '../../../src/kube/store.js';
import { ctx } from '../controller/fakes.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-builds-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
const digest = `sha256:${'d1'.repeat(32)}`;

/**
 * buildctl as a script: it logs its arguments and the secret it was given into the runs log, then
 * sleeps $SLEEP seconds, and either writes a metadata file or fails like BuildKit does.
 */
const bin = path.join(root, 'bin');
fs.mkdirSync(bin);
const buildctl = path.join(bin, 'buildctl');
const runs = path.join(root, 'runs.log');
fs.writeFileSync(
  buildctl,
  `#!/bin/sh
meta=; secret=
for a in "$@"; do
  case "$a" in
    --metadata-file=*) meta="\${a#--metadata-file=}" ;;
    --secret=*) secret="\${a#*src=}" ;;
  esac
done
echo "run secret=$(cat "$secret" 2>/dev/null)" >> ${runs}
sleep "\${SLEEP:-0}"
if [ -e "${root}/fail" ]; then
  echo '#7 [2/2] RUN exit 3'
  echo '#7 ERROR: process "/bin/sh -c exit 3" did not complete successfully: exit code: 3'
  echo 'Dockerfile:2'
  echo 'error: failed to solve: process "/bin/sh -c exit 3" did not complete successfully: exit code: 3'
  exit 1
fi
echo '{"containerimage.digest": "${digest}"}' > "$meta"
`,
  { mode: 0o755 },
);

const build: Build = {
  apiVersion: 'gantry.dev/v1alpha1',
  kind: 'Build',
  metadata: { name: 'app-0123456789', namespace: 'ns', uid: 'uid-1', generation: 1 },
  spec: {
    image: '127.0.0.1:5000/e2e/app:1',
    context: { files: { Dockerfile: 'FROM scratch\n', 'app/run.sh': 'echo hi\n' } },
    dockerfile: 'Dockerfile',
    secrets: [{ id: 'token', secretKeyRef: { name: 'creds', key: 'token' } }],
    nodeName: 'h1',
  },
};

let cache: Store<Build>;
let writes: BuildStatus[];
let secrets: Map<string, V1Secret>;
const workDir = path.join(root, 'state', 'builds');

function runner(): BuildRunner {
  return new BuildRunner(
    { fieldManager: 'gantry-agent/h1', buildkitAddress: 'unix:///x.sock', buildctl, workDir },
    {
      cache,
      api: {
        applyStatus: async (_name, status) => {
          writes.push(status as BuildStatus);
          const current = cache.get('ns/app-0123456789')!;
          return cache.set({ ...current, status: status as BuildStatus })!;
        },
      },
      readSecret: async (namespace, name) => secrets.get(`${namespace}/${name}`),
    },
  );
}

const runCount = () =>
  fs.existsSync(runs) ? fs.readFileSync(runs, 'utf8').split('\n').filter(Boolean).length : 0;

describe('BuildRunner', () => {
  beforeEach(() => {
    cache = new Store<Build>();
    cache.set(structuredClone(build));
    writes = [];
    secrets = new Map([
      ['ns/creds', { data: { token: Buffer.from('s3cr3t').toString('base64') } } as V1Secret],
    ]);
    fs.rmSync(runs, { force: true });
    fs.rmSync(path.join(root, 'fail'), { force: true });
    fs.rmSync(workDir, { recursive: true, force: true });
    delete process.env.SLEEP;
  });

  it('reports Running, then Succeeded with the digest; the secret reached buildctl and is gone', async () => {
    await runner().reconcile('ns/app-0123456789', ctx);
    assert.deepEqual(
      writes.map((w) => w.phase),
      ['Running', 'Succeeded'],
    );
    const last = writes.at(-1)!;
    assert.equal(last.digest, digest);
    assert.equal(last.attempts, 1);
    assert.deepEqual(
      last.conditions?.map((c) => [c.type, c.status, c.reason]),
      [['Ready', 'True', 'Built']],
    );
    assert.deepEqual(
      writes[0]!.conditions?.map((c) => [c.type, c.status, c.reason]),
      [
        ['Ready', 'False', 'Building'],
        ['Reconciling', 'True', 'Building'],
      ],
    );
    assert.ok(last.startedAt && last.finishedAt);
    assert.equal(fs.readFileSync(runs, 'utf8'), 'run secret=s3cr3t\n');
    assert.deepEqual(fs.readdirSync(workDir), [], 'the run directory, secrets included, is removed');
    await runner().reconcile('ns/app-0123456789', ctx);
    assert.equal(runCount(), 1, 'a finished Build is not run again');
  });

  it('does not run again when the cache still shows its own Running write after the result', async () => {
    const r = runner();
    let runningEntry: Build | undefined;
    const apply = cache.set.bind(cache);
    // The watch event of the Running write is the last one the cache has seen.
    cache.set = (b: Build) => {
      if (b.status?.phase === 'Running') runningEntry = structuredClone(b);
      return apply(b.status?.phase === 'Running' || !runningEntry ? b : runningEntry);
    };
    await r.reconcile('ns/app-0123456789', ctx);
    assert.equal(cache.get('ns/app-0123456789')?.status?.phase, 'Running');
    await r.reconcile('ns/app-0123456789', ctx);
    assert.equal(runCount(), 1, 'one run, though the cache said Running after it ended');
    assert.deepEqual(
      writes.map((w) => w.phase),
      ['Running', 'Succeeded'],
    );
  });

  it('reports the failing step, the error and the last lines', async () => {
    fs.writeFileSync(path.join(root, 'fail'), '');
    await runner().reconcile('ns/app-0123456789', ctx);
    const last = writes.at(-1)!;
    assert.equal(last.phase, 'Failed');
    assert.equal(last.failedStep, '[2/2] RUN exit 3 (Dockerfile:2)');
    assert.match(last.message!, /exit code: 3/);
    assert.match(last.logTail!, /ERROR: process/);
    const stalled = last.conditions?.find((c) => c.type === 'Stalled');
    assert.equal(stalled?.status, 'True');
    assert.match(stalled!.message, /^\[2\/2\] RUN exit 3 \(Dockerfile:2\): process/);
  });

  it('removes its directory when the Build was deleted while it ran', async () => {
    const deleting = new BuildRunner(
      { fieldManager: 'gantry-agent/h1', buildkitAddress: 'unix:///x.sock', buildctl, workDir },
      {
        cache,
        api: {
          applyStatus: async (_name, status) => {
            if ((status as BuildStatus).phase !== 'Running')
              throw Object.assign(new Error('gone'), { code: 404 });
            return cache.get('ns/app-0123456789')!;
          },
        },
        readSecret: async (namespace, name) => secrets.get(`${namespace}/${name}`),
      },
    );
    await deleting.reconcile('ns/app-0123456789', ctx);
    assert.equal(runCount(), 1);
    assert.deepEqual(fs.readdirSync(workDir), []);
  });

  it('waits while a Secret is missing, as Pending, and runs nothing', async () => {
    secrets.clear();
    assert.deepEqual(await runner().reconcile('ns/app-0123456789', ctx), { requeueAfter: 30_000 });
    assert.equal(writes.at(-1)?.phase, 'Pending');
    assert.match(writes.at(-1)!.message!, /Secret ns\/creds does not exist/);
    assert.equal(runCount(), 0);
    assert.deepEqual(fs.readdirSync(workDir), [], 'nothing of the run is left meanwhile');
  });

  it('after a restart, waits for the buildctl still running and takes its result instead of a second run', async () => {
    // What an agent that stopped mid-build leaves: the run directory and a buildctl still running.
    const dir = path.join(workDir, 'uid-1');
    fs.mkdirSync(dir, { recursive: true });
    const orphan = spawn(buildctl, [`--metadata-file=${dir}/metadata.json`], {
      env: { ...process.env, SLEEP: '1' },
      stdio: 'ignore',
    });
    fs.writeFileSync(path.join(dir, 'buildctl.pid'), String(orphan.pid));
    cache.set({ ...structuredClone(build), status: { phase: 'Running', attempts: 1 } });
    await runner().reconcile('ns/app-0123456789', ctx);
    assert.deepEqual(
      writes.map((w) => [w.phase, w.digest, w.attempts]),
      [['Succeeded', digest, 1]],
    );
    assert.equal(runCount(), 1, 'only the first agent ran buildctl');
  });

  it('after a restart, reports a run that ended before its status was written', async () => {
    const dir = path.join(workDir, 'uid-1');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'exit-code'), '0');
    fs.writeFileSync(path.join(dir, 'metadata.json'), JSON.stringify({ 'containerimage.digest': digest }));
    cache.set({ ...structuredClone(build), status: { phase: 'Running', attempts: 1 } });
    await runner().reconcile('ns/app-0123456789', ctx);
    assert.deepEqual(
      writes.map((w) => w.phase),
      ['Succeeded'],
    );
    assert.equal(runCount(), 0);
  });
});
