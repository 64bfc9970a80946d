// The Image status as a pure function of the resolution and the Hosts' reports.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Host } from '../../../src/api/v1alpha1/index.js';
import {
  aggregateHosts,
  hostState,
  imageStatus,
  invalidImageStatus,
  readyCondition,
  type ImageTarget,
  type Resolution,
} from '../../../src/controller/imagestatus.js';
import { hostReady } from './fakes.js';

const digest = `sha256:${'a'.repeat(64)}`;
const otherDigest = `sha256:${'b'.repeat(64)}`;
const image: ImageTarget = {
  key: 'ns/web',
  nodeSelector: { pool: 'edge' },
  digest,
  resolvedImage: `docker.io/library/nginx@${digest}`,
};

/** A Ready Host (its agent heartbeats) with these labels and status. */
function host(name: string, labels: Record<string, string>, status: Host['status'] = {}): Host {
  return {
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Host',
    metadata: { name, labels },
    spec: { unschedulable: false, drain: false, maxConcurrentMigrations: 2 },
    status: { conditions: [hostReady], ...status },
  };
}

const edge = { pool: 'edge' };
const pulling = (key = image.key) => ({ imagePulls: [{ image: key, state: 'Pulling' as const }] });
const failed = (reason: string, message = 'boom', key = image.key) => ({
  imagePulls: [{ image: key, state: 'Failed' as const, reason, message }],
});

const resolved: Resolution = {
  digest,
  resolvedImage: image.resolvedImage,
  lastResolvedTime: '2026-01-01T00:00:00Z',
  sizeBytes: 42,
  resolved: { status: 'True', reason: 'Resolved', message: 'nginx resolved' },
};

describe('hostState', () => {
  it('leaves out Hosts that are not Ready: a lost Host cannot pull', () => {
    const lost = { ...hostReady, status: 'Unknown' as const, reason: 'HeartbeatLost' };
    assert.deepEqual(hostState(image, host('h', edge, { conditions: [lost] })), { state: 'NotDesired' });
    assert.deepEqual(hostState(image, host('h', edge, { conditions: [] })), { state: 'NotDesired' });
  });

  it('leaves out Hosts the node selector does not pick; no selector picks every Host', () => {
    assert.deepEqual(hostState(image, host('h', { pool: 'core' })), { state: 'NotDesired' });
    assert.deepEqual(hostState(image, undefined), { state: 'NotDesired' });
    assert.deepEqual(hostState({ ...image, nodeSelector: undefined }, host('h', {})), { state: 'Waiting' });
  });

  it('is Ready when the Host holds the digest, as the image ID or as a repo digest name', () => {
    assert.deepEqual(hostState(image, host('h', edge, { images: [{ digest }] })), { state: 'Ready' });
    const byName = { images: [{ digest: otherDigest, names: [`nginx@${digest}`] }] };
    assert.deepEqual(hostState(image, host('h', edge, byName)), { state: 'Ready' });
    const wrongName = {
      images: [{ digest: otherDigest, names: [`nginx@${otherDigest}`, 'not a reference'] }],
    };
    assert.deepEqual(hostState(image, host('h', edge, wrongName)), { state: 'Waiting' });
  });

  it('holding the digest wins over a stale pull report; without a digest nothing is Ready', () => {
    assert.deepEqual(hostState(image, host('h', edge, { images: [{ digest }], ...failed('X') })), {
      state: 'Ready',
    });
    assert.deepEqual(hostState({ ...image, digest: undefined }, host('h', edge, { images: [{ digest }] })), {
      state: 'Waiting',
    });
  });

  it("reads only this Image's pull reports", () => {
    assert.deepEqual(hostState(image, host('h', edge, pulling())), { state: 'Pulling' });
    assert.deepEqual(hostState(image, host('h', edge, pulling('ns/other'))), { state: 'Waiting' });
    assert.deepEqual(hostState(image, host('h', edge, failed('Unauthorized', 'denied'))), {
      state: 'Failed',
      reason: 'Unauthorized',
      message: 'denied',
    });
  });
});

describe('aggregateHosts', () => {
  it('counts desired, ready, pulling and failed Hosts, each Host once', () => {
    const counts = aggregateHosts(image, [
      host('h1', edge, { images: [{ digest }] }),
      host('h2', edge, pulling()),
      host('h3', edge, failed('ErrImagePull', 'not found')),
      host('h4', edge),
      host('h5', { pool: 'core' }, failed('X')),
    ]);
    assert.deepEqual(counts, {
      desiredHosts: 4,
      readyHosts: 1,
      pullingHosts: 1,
      failedHosts: 1,
      failures: [{ host: 'h3', reason: 'ErrImagePull', message: 'not found' }],
    });
  });

  it('keeps at most ten failures, by host name, and counts them all', () => {
    const hosts = Array.from({ length: 12 }, (_, i) =>
      host(`h${String(11 - i).padStart(2, '0')}`, edge, failed('X')),
    );
    const counts = aggregateHosts(image, hosts);
    assert.equal(counts.failedHosts, 12);
    assert.deepEqual(
      counts.failures.map((f) => f.host),
      ['h00', 'h01', 'h02', 'h03', 'h04', 'h05', 'h06', 'h07', 'h08', 'h09'],
    );
  });
});

describe('readyCondition', () => {
  const counts = (desired: number, ready: number, pullingHosts = 0, failedHosts = 0) => ({
    desiredHosts: desired,
    readyHosts: ready,
    pullingHosts,
    failedHosts,
    failures: failedHosts ? [{ host: 'h2', reason: 'Unauthorized', message: 'denied' }] : [],
  });

  it('repeats the Resolved condition while the reference is not resolved', () => {
    const failing = {
      ...resolved,
      resolved: { status: 'False' as const, reason: 'ManifestUnknown', message: 'no tag' },
    };
    assert.deepEqual(readyCondition(failing, counts(2, 2)), failing.resolved);
  });

  it('is True when every desired Host holds the digest, or none is desired', () => {
    assert.equal(readyCondition(resolved, counts(2, 2)).reason, 'AllHostsReady');
    assert.equal(readyCondition(resolved, counts(0, 0)).reason, 'NoMatchingHosts');
    assert.equal(readyCondition(resolved, counts(0, 0)).status, 'True');
  });

  it('says why not: failures first, then pulls, then waiting', () => {
    const failedCond = readyCondition(resolved, counts(3, 1, 1, 1));
    assert.equal(failedCond.status, 'False');
    assert.equal(failedCond.reason, 'PullFailed');
    assert.match(failedCond.message, /1 of 3 Hosts hold .*1 failed to pull it .*h2: Unauthorized: denied/);
    assert.equal(readyCondition(resolved, counts(3, 1, 2)).reason, 'Pulling');
    assert.equal(readyCondition(resolved, counts(3, 1)).reason, 'WaitingForHosts');
  });
});

describe('imageStatus', () => {
  const now = new Date('2026-02-01T10:00:00.500Z');
  const allReady = aggregateHosts(image, [host('h1', edge, { images: [{ digest }] })]);

  it('carries the resolution, the counts and both conditions with observedGeneration', () => {
    const status = imageStatus(3, undefined, resolved, allReady, now);
    assert.deepEqual(status, {
      observedGeneration: 3,
      digest,
      resolvedImage: image.resolvedImage,
      lastResolvedTime: '2026-01-01T00:00:00Z',
      sizeBytes: 42,
      desiredHosts: 1,
      readyHosts: 1,
      pullingHosts: 0,
      failedHosts: 0,
      conditions: [
        {
          type: 'Resolved',
          status: 'True',
          observedGeneration: 3,
          reason: 'Resolved',
          message: 'nginx resolved',
          lastTransitionTime: '2026-02-01T10:00:00Z',
        },
        {
          type: 'Ready',
          status: 'True',
          observedGeneration: 3,
          reason: 'AllHostsReady',
          message: `All 1 Hosts hold ${digest}`,
          lastTransitionTime: '2026-02-01T10:00:00Z',
        },
      ],
    });
  });

  it('keeps lastTransitionTime while a status holds, and leaves out conditions of other writers', () => {
    const earlier = imageStatus(
      3,
      undefined,
      resolved,
      allReady,
      new Date('2026-01-01T00:00:00Z'),
    ).conditions!;
    const others = [
      ...earlier,
      {
        type: 'Pinned',
        status: 'True' as const,
        reason: 'X',
        message: '',
        lastTransitionTime: '2026-01-01T00:00:00Z',
      },
    ];
    const status = imageStatus(4, others, resolved, allReady, now);
    assert.deepEqual(
      status.conditions!.map((c) => [c.type, c.lastTransitionTime, c.observedGeneration]),
      [
        ['Resolved', '2026-01-01T00:00:00Z', 4],
        ['Ready', '2026-01-01T00:00:00Z', 4],
      ],
    );
  });

  it('omits what is unknown: no digest yet, no failures', () => {
    const unresolved: Resolution = {
      resolved: { status: 'False', reason: 'RegistryUnreachable', message: 'down' },
    };
    const status = imageStatus(1, undefined, unresolved, aggregateHosts(image, []), now);
    assert.deepEqual(Object.keys(status).sort(), [
      'conditions',
      'desiredHosts',
      'failedHosts',
      'observedGeneration',
      'pullingHosts',
      'readyHosts',
    ]);
  });

  it('turns an unparseable spec into two False conditions with the parse message', () => {
    const status = invalidImageStatus(2, undefined, 'spec.image: Invalid string', now);
    assert.deepEqual(
      status.conditions!.map((c) => [c.type, c.status, c.reason, c.message]),
      [
        ['Resolved', 'False', 'InvalidSpec', 'spec.image: Invalid string'],
        ['Ready', 'False', 'InvalidSpec', 'spec.image: Invalid string'],
        ['Stalled', 'True', 'InvalidSpec', 'spec.image: Invalid string'],
      ],
    );
    assert.equal(status.observedGeneration, 2);
  });
});
