// `kubectl gantry stop` and `start` without a cluster: what they accept on the command line, when
// they count a stop or start done (the agent's report on the spec that asked for it), what they
// refuse, and how ps shows a stopped Container.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Container, ContainerStatus } from '../../../src/api/v1alpha1/index.js';
import { main } from '../../../src/plugin/cli.js';
import { commands, status } from '../../../src/plugin/commands.js';
import {
  parseGracePeriod,
  replicaRefusal,
  startProgress,
  stopProgress,
} from '../../../src/plugin/lifecycle.js';

function container(s: Partial<ContainerStatus>, metadata: Partial<Container['metadata']> = {}): Container {
  return {
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Container',
    metadata: { name: 'web', namespace: 'ns', generation: 3, ...metadata },
    spec: { image: 'web:1' },
    status: s,
  } as Container;
}

const stalled = (reason: string, message: string) => ({
  type: 'Stalled',
  status: 'True' as const,
  reason,
  message,
  lastTransitionTime: '2026-01-01T00:00:00Z',
});

/** main() with stderr captured. */
async function typed(argv: string[]): Promise<{ code: number; err: string }> {
  let err = '';
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    return { code: await main([...argv, '--kubeconfig', '/nonexistent'], commands, () => {}), err };
  } finally {
    process.stderr.write = write;
  }
}

describe('stop and start', () => {
  it('take -t as whole seconds the API accepts (0-3600)', () => {
    assert.equal(parseGracePeriod('0'), 0);
    assert.equal(parseGracePeriod('10'), 10);
    assert.equal(parseGracePeriod('3600'), 3600);
    for (const bad of ['3601', '-1', '1.5', '10s', '', ' 5'])
      assert.equal(parseGracePeriod(bad), undefined, bad);
  });

  it('refuse a bad flag or no name, before any request', async () => {
    const noName = await typed(['stop']);
    assert.equal(noName.code, 1);
    assert.match(
      noName.err,
      /^error: at least one container name is required\nUsage: kubectl gantry stop NAME\.\.\./,
    );
    const badGrace = await typed(['stop', '-t', '10s', 'web']);
    assert.equal(badGrace.code, 1);
    assert.match(badGrace.err, /^error: invalid -t "10s": give whole seconds from 0 to 3600/);
    const badTimeout = await typed(['start', 'web', '--timeout', 'soon']);
    assert.equal(badTimeout.code, 1);
    assert.match(badTimeout.err, /^error: invalid --timeout "soon": give a duration such as 30s or 5m/);
  });

  it('count a stop done once the agent reports Stopped for the spec that asked, not an earlier report', () => {
    assert.equal(stopProgress(container({ phase: 'Stopped', observedGeneration: 3 }), 3), 'done');
    assert.equal(stopProgress(container({ phase: 'Stopped', observedGeneration: 2 }), 3), 'waiting');
    assert.equal(stopProgress(container({ phase: 'Stopping', observedGeneration: 3 }), 3), 'waiting');
    assert.equal(stopProgress(container({ phase: 'Running', observedGeneration: 2 }), 3), 'waiting');
  });

  it('count a start done once it runs (or ran to success), failed when the agent reports it stuck', () => {
    assert.equal(startProgress(container({ phase: 'Running', observedGeneration: 3 }), 3), 'done');
    assert.equal(startProgress(container({ phase: 'Succeeded', observedGeneration: 3 }), 3), 'done');
    assert.equal(startProgress(container({ phase: 'Running', observedGeneration: 2 }), 3), 'waiting');
    assert.equal(startProgress(container({ phase: 'Creating', observedGeneration: 3 }), 3), 'waiting');
    assert.deepEqual(
      startProgress(
        container({
          phase: 'Creating',
          observedGeneration: 3,
          conditions: [stalled('ErrImagePull', 'not found')],
        }),
        3,
      ),
      { failed: 'Creating (ErrImagePull): not found' },
    );
  });

  it("refuse a Workload's replica, saying to scale the Workload", () => {
    assert.equal(replicaRefusal(container({})), undefined);
    const replica = container(
      {},
      {
        name: 'web-7f9c2-abcde',
        ownerReferences: [
          { apiVersion: 'gantry.dev/v1alpha1', kind: 'Workload', name: 'web', uid: 'u', controller: true },
        ],
      },
    );
    assert.equal(
      replicaRefusal(replica),
      'container.gantry.dev/web-7f9c2-abcde is a replica of workload.gantry.dev/web, which decides how ' +
        'many run: scale the Workload instead (kubectl scale workload/web --replicas=N)',
    );
  });

  it('ps shows a stopped Container as such, with the exit of its last run; not as exited for good', () => {
    const finishedAt = new Date(Date.now() - 65_000).toISOString();
    assert.equal(status(container({ phase: 'Stopped', exitCode: 143, finishedAt })), 'Stopped (143) 65s ago');
    assert.equal(status(container({ phase: 'Stopped' })), 'Stopped', 'never started');
    assert.equal(status(container({ phase: 'Stopping', reason: 'Stopping' })), 'Stopping');
    assert.equal(status(container({ phase: 'Succeeded', exitCode: 0, finishedAt })), 'Exited (0) 65s ago');
  });
});
