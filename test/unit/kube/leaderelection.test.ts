import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import type { V1Lease } from '@kubernetes/client-node';
import { FakeClock } from '../../../src/kube/clock.js';
import { StatusError } from '../../../src/kube/errors.js';
import { LeaderElector, type LeaseApi } from '../../../src/kube/leaderelection.js';
import { createLogger } from '../../../src/obs/logger.js';
import { registry } from '../../../src/obs/metrics.js';

/** An in-memory Lease endpoint with the apiserver's optimistic concurrency (409 on a stale resourceVersion). */
class FakeLeaseStore {
  stored: V1Lease | undefined;
  private rv = 0;
  /** When set, every call fails like an unreachable apiserver. */
  down = false;
  /** When set, every call hangs. */
  hang = false;
  writes = 0;

  api(): LeaseApi {
    // Through JSON, as over the wire: times come back as strings.
    const wire = (lease: V1Lease): V1Lease => JSON.parse(JSON.stringify(lease)) as V1Lease;
    const gate = async (): Promise<void> => {
      if (this.hang) await new Promise(() => {});
      if (this.down) throw new Error('connect ECONNREFUSED');
    };
    return {
      readNamespacedLease: async () => {
        await gate();
        if (!this.stored) throw new StatusError(404, 'not found');
        return wire(this.stored);
      },
      createNamespacedLease: async ({ body }) => {
        await gate();
        if (this.stored) throw new StatusError(409, 'already exists');
        this.writes++;
        this.stored = wire({ ...body, metadata: { ...body.metadata, resourceVersion: String(++this.rv) } });
        return wire(this.stored);
      },
      replaceNamespacedLease: async ({ body }) => {
        await gate();
        if (!this.stored) throw new StatusError(404, 'not found');
        if (body.metadata?.resourceVersion !== this.stored.metadata?.resourceVersion) {
          throw new StatusError(409, 'conflict');
        }
        this.writes++;
        this.stored = wire({ ...body, metadata: { ...body.metadata, resourceVersion: String(++this.rv) } });
        return wire(this.stored);
      },
    };
  }

  get spec(): NonNullable<V1Lease['spec']> {
    assert.ok(this.stored?.spec);
    return this.stored.spec;
  }
}

let leases = 0;
function candidate(store: FakeLeaseStore, clock: FakeClock, identity: string, name: string) {
  const calls: string[] = [];
  const elector = new LeaderElector({
    api: store.api(),
    namespace: 'gantry-system',
    name,
    identity,
    clock,
    log: createLogger({ stream: new PassThrough() }),
    callbacks: {
      onStartedLeading: () => calls.push('started'),
      onStoppedLeading: () => calls.push('stopped'),
      onNewLeader: (id) => calls.push(`leader ${id}`),
    },
  });
  return { elector, calls };
}

function setup() {
  const store = new FakeLeaseStore();
  const clock = new FakeClock();
  const name = `lease-test-${leases++}`;
  return {
    store,
    clock,
    name,
    a: candidate(store, clock, 'a', name),
    b: candidate(store, clock, 'b', name),
  };
}

async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}

/** Moves the fake clock forward in small steps, letting async loops run between them. */
async function tick(clock: FakeClock, ms: number, step = 100): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    clock.advance(step);
    await settle();
  }
}

async function masterStatus(name: string): Promise<number> {
  const line = (await registry.metrics())
    .split('\n')
    .find((l) => l.startsWith(`leader_election_master_status{name="${name}"} `));
  assert.ok(line);
  return Number(line.split(' ')[1]);
}

describe('LeaderElector.tryAcquireOrRenew', () => {
  it('creates the lease when there is none and holds it', async () => {
    const { store, a } = setup();
    assert.equal(await a.elector.tryAcquireOrRenew(), true);
    assert.equal(a.elector.isLeader(), true);
    assert.equal(store.spec.holderIdentity, 'a');
    assert.equal(store.spec.leaseDurationSeconds, 15);
    assert.equal(store.spec.leaseTransitions, 0);
    // MicroTime on the wire: six fractional digits.
    assert.match(String(store.spec.renewTime), /\.\d{6}Z$/);
    assert.match(String(store.spec.acquireTime), /\.\d{6}Z$/);
  });

  it('lets no one else take a valid lease', async () => {
    const { clock, a, b } = setup();
    await a.elector.tryAcquireOrRenew();
    clock.advance(14_000);
    assert.equal(await b.elector.tryAcquireOrRenew(), false);
    assert.equal(b.elector.isLeader(), false);
    assert.equal(b.elector.leader(), 'a');
  });

  it('renews: renewTime moves, acquireTime and transitions stay', async () => {
    const { store, clock, a } = setup();
    await a.elector.tryAcquireOrRenew();
    const acquired = store.spec.acquireTime;
    clock.advance(2_000);
    assert.equal(await a.elector.tryAcquireOrRenew(), true);
    assert.equal(store.spec.acquireTime, acquired);
    assert.notEqual(store.spec.renewTime, acquired);
    assert.equal(store.spec.leaseTransitions, 0);
  });

  it('lets another candidate take over once the lease has not changed for leaseDuration', async () => {
    const { store, clock, a, b } = setup();
    await a.elector.tryAcquireOrRenew();
    assert.equal(await b.elector.tryAcquireOrRenew(), false); // b starts watching the record now
    clock.advance(14_999);
    assert.equal(await b.elector.tryAcquireOrRenew(), false);
    clock.advance(1);
    assert.equal(await b.elector.tryAcquireOrRenew(), true);
    assert.equal(store.spec.holderIdentity, 'b');
    assert.equal(store.spec.leaseTransitions, 1);
    // The old leader's renewal now fails: its fast path hits a 409, the slow path sees b's lease.
    assert.equal(await a.elector.tryAcquireOrRenew(), false);
    assert.equal(a.elector.isLeader(), false);
    assert.equal(a.elector.leader(), 'b');
  });

  it('judges expiry by its own clock from when it saw a change, not by renewTime', async () => {
    const { store, clock, a, b } = setup();
    await a.elector.tryAcquireOrRenew();
    clock.advance(60_000); // a stale lease, but b has only just seen it
    assert.equal(await b.elector.tryAcquireOrRenew(), false);
    clock.advance(15_000);
    assert.equal(await b.elector.tryAcquireOrRenew(), true);
    assert.equal(store.spec.holderIdentity, 'b');
  });

  it('loses a race on a stale resourceVersion (409) instead of overwriting', async () => {
    const { store, clock, name, a, b } = setup();
    await a.elector.tryAcquireOrRenew();
    await b.elector.tryAcquireOrRenew();
    clock.advance(16_000);
    const c = candidate(store, clock, 'c', name);
    await c.elector.tryAcquireOrRenew(); // c observes
    clock.advance(16_000);
    // b and c both read the same expired lease; whoever writes second gets 409.
    const results = await Promise.all([b.elector.tryAcquireOrRenew(), c.elector.tryAcquireOrRenew()]);
    assert.deepEqual(results.sort(), [false, true]);
    assert.equal(store.spec.leaseTransitions, 1);
  });

  it('fails (without throwing) while the apiserver is unreachable', async () => {
    const { store, a } = setup();
    store.down = true;
    assert.equal(await a.elector.tryAcquireOrRenew(), false);
  });

  it('release clears the holder so another candidate takes over at once', async () => {
    const { store, a, b } = setup();
    await a.elector.tryAcquireOrRenew();
    assert.equal(await b.elector.tryAcquireOrRenew(), false);
    assert.equal(await a.elector.release(), true);
    assert.equal(store.spec.holderIdentity, '');
    assert.equal(store.spec.leaseDurationSeconds, 1);
    assert.equal(a.elector.isLeader(), false);
    assert.equal(await b.elector.tryAcquireOrRenew(), true);
    assert.equal(store.spec.leaseTransitions, 1);
    assert.equal(await a.elector.release(), true, 'nothing to release when not leading');
  });

  it('refuses inconsistent durations', () => {
    const store = new FakeLeaseStore();
    const base = {
      api: store.api(),
      namespace: 'ns',
      name: 'x',
      identity: 'a',
      log: createLogger({ stream: new PassThrough() }),
      callbacks: { onStartedLeading() {}, onStoppedLeading() {} },
    };
    assert.throws(
      () => new LeaderElector({ ...base, leaseDurationMs: 10_000, renewDeadlineMs: 10_000 }),
      /leaseDuration/,
    );
    assert.throws(
      () => new LeaderElector({ ...base, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 }),
      /renewDeadline/,
    );
    assert.throws(() => new LeaderElector({ ...base, identity: '' }), /identity/);
  });
});

describe('LeaderElector.run', () => {
  it('leads, keeps renewing, and steps down when renewals fail past the deadline', async () => {
    const { store, clock, name, a } = setup();
    const stop = new AbortController();
    const running = a.elector.run(stop.signal);
    await settle();
    assert.deepEqual(a.calls, ['leader a', 'started']);
    assert.equal(await masterStatus(name), 1);
    await tick(clock, 20_000);
    const writes = store.writes;
    assert.ok(writes >= 8, `renewed every retryPeriod (${writes} writes)`);
    store.down = true;
    await tick(clock, 9_000);
    assert.deepEqual(a.calls, ['leader a', 'started'], 'still leading within renewDeadline');
    await tick(clock, 3_000);
    await running;
    assert.deepEqual(a.calls, ['leader a', 'started', 'stopped']);
    assert.equal(await masterStatus(name), 0);
    assert.equal(store.spec.holderIdentity, 'a', 'a lost lease is not released');
  });

  it('steps down at the deadline even when a renewal call hangs', async () => {
    const { store, clock, a } = setup();
    const running = a.elector.run(new AbortController().signal);
    await settle();
    await tick(clock, 4_000);
    store.hang = true;
    await tick(clock, 12_100);
    await running;
    assert.deepEqual(a.calls.slice(-1), ['stopped']);
  });

  it('on abort releases the lease, and a waiting candidate takes over within a retry period', async () => {
    const { store, clock, a, b } = setup();
    const stopA = new AbortController();
    const runningA = a.elector.run(stopA.signal);
    await settle();
    const stopB = new AbortController();
    const runningB = b.elector.run(stopB.signal);
    await tick(clock, 5_000);
    assert.deepEqual(b.calls, ['leader a']);
    stopA.abort();
    await runningA;
    assert.deepEqual(a.calls, ['leader a', 'started', 'stopped']);
    assert.equal(store.spec.holderIdentity, '');
    await tick(clock, 4_500); // at most retryPeriod * (1 + jitter 1.2)
    assert.deepEqual(b.calls, ['leader a', 'leader b', 'started']);
    assert.equal(store.spec.holderIdentity, 'b');
    stopB.abort();
    await runningB;
  });

  it('a candidate aborted before winning returns without callbacks', async () => {
    const { clock, a, b } = setup();
    const stopA = new AbortController();
    const runningA = a.elector.run(stopA.signal);
    await settle();
    const stopB = new AbortController();
    const runningB = b.elector.run(stopB.signal);
    await tick(clock, 3_000);
    stopB.abort();
    await runningB;
    assert.deepEqual(b.calls, ['leader a']);
    stopA.abort();
    await runningA;
  });
});
