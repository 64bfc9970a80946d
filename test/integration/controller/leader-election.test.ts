// Several controller processes, one Lease: one leads (its metric says 1, the others' 0, and the
// Lease names it); when the leader is SIGKILLed a standby takes over once the lease expires; a
// leader stopped with SIGTERM releases the Lease, so a standby takes over at once. That there was
// never more than one leader is checked on recorded facts: every version of the Lease (a watch
// from before the first candidate starts) and the time each process logged "Became leader".
// Short durations (lease 4s, renew 3s, retry 1s) keep it quick; the Lease lives in this test's
// namespace, under the default name, so no other controller on the cluster competes for it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CoordinationV1Api, type V1Lease } from '@kubernetes/client-node';
import { eventually } from '../../support/wait.js';
import { WatchRecorder } from '../../support/watch.js';
import {
  baseArgs,
  clients,
  ControllerProcess,
  createNamespace,
  deleteNamespace,
  installCrds,
  uniqueName,
} from './harness.js';

const ns = uniqueName('gantry-ctrl-election');
const leaseName = 'gantry-controller';
const leaseMs = 4000;
const retryMs = 1000;
/** A standby polls every retry period stretched by up to 2.2 (client-go's jitter). */
const pollMs = retryMs * 2.2;
const leases = clients().client.api(CoordinationV1Api);
const processes: ControllerProcess[] = [];

function start(): ControllerProcess {
  const p = new ControllerProcess([
    ...baseArgs(),
    '--leader-elect=true',
    `--leader-election-namespace=${ns}`,
    '--leader-elect-lease-duration=4s',
    '--leader-elect-renew-deadline=3s',
    '--leader-elect-retry-period=1s',
  ]);
  processes.push(p);
  return p;
}

async function holder(): Promise<string> {
  const lease = await leases.readNamespacedLease({ namespace: ns, name: leaseName });
  return lease.spec?.holderIdentity ?? '';
}

const leading = (p: ControllerProcess) => p.metric('leader_election_master_status', { name: leaseName });

/** Waits until `p` leads by its own account and by the Lease's. */
async function leads(p: ControllerProcess, timeoutMs: number): Promise<void> {
  const identity = await p.identity();
  await eventually(
    `${identity} to lead`,
    async () => (await leading(p)) === 1 && (await holder()) === identity,
    { timeoutMs, intervalMs: 100 },
  );
}

/** Waits until `p` has synced its caches and campaigns (its metric exists, at 0). */
async function standsBy(p: ControllerProcess): Promise<void> {
  await eventually('a standby', async () => (await leading(p)) === 0);
}

describe('leader election between controller processes', () => {
  before(async () => {
    await installCrds();
    await createNamespace(ns);
  });

  after(async () => {
    await Promise.all(processes.map((p) => p.stop()));
    await deleteNamespace(ns);
  });

  it('one leads, a SIGKILLed leader is replaced after the lease expires, a SIGTERMed one hands over at once', async () => {
    // Every version of the Lease, in the apiserver's order, from before any candidate starts.
    const lease = await WatchRecorder.start<V1Lease>(`/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`, {
      fieldSelector: `metadata.name=${leaseName}`,
    });
    const candidates = [start(), start(), start()];
    const identities = await Promise.all(candidates.map((p) => p.identity()));
    /** The candidate the Lease names, once it leads by its own account too. */
    const leader = async (among: ControllerProcess[], timeoutMs: number): Promise<ControllerProcess> => {
      const p = await eventually(
        'a leader',
        async () => {
          const h = await holder().catch(() => '');
          return among.find((c) => identities[candidates.indexOf(c)] === h);
        },
        { timeoutMs, intervalMs: 100 },
      );
      await leads(p, timeoutMs);
      return p;
    };

    let first: ControllerProcess, second: ControllerProcess, third: ControllerProcess;
    let firstDiedAt: number;
    try {
      first = await leader(candidates, 15_000);
      const standbys = candidates.filter((p) => p !== first);
      await Promise.all(standbys.map(standsBy));

      // A crash: no release, so a standby waits for the lease to run out.
      const killedAt = Date.now();
      first.signal('SIGKILL');
      assert.equal(await first.exited, null, 'killed by the signal');
      firstDiedAt = Date.now();
      second = await leader(standbys, leaseMs + 2 * pollMs + 5000);
      const takeover = Date.now() - killedAt;
      console.log(`takeover after SIGKILL: ${takeover} ms (lease ${leaseMs} ms)`);
      assert.ok(takeover <= leaseMs + 2 * pollMs + 1000, `took over in ${takeover} ms`);
      third = standbys.find((p) => p !== second)!;
      assert.equal(await leading(third), 0, 'the other standby still stands by');

      // A graceful stop: the lease is released, and the last standby takes it well before it would expire.
      const stoppedAt = Date.now();
      second.signal('SIGTERM');
      const secondId = identities[candidates.indexOf(second)];
      await eventually('the lease to be released', async () => (await holder()) !== secondId, {
        timeoutMs: 2000,
        intervalMs: 50,
      });
      const released = Date.now() - stoppedAt;
      assert.equal(await second.exited, 0, 'a graceful shutdown exits 0');
      await leads(third, leaseMs);
      const handover = Date.now() - stoppedAt;
      console.log(`after SIGTERM: lease released in ${released} ms, standby leads after ${handover} ms`);
      assert.ok(handover < leaseMs, `handed over in ${handover} ms, before the lease could have expired`);
    } catch (e) {
      await lease.stop().catch(() => undefined);
      throw e;
    }
    await lease.stop();

    // At most one leader at a time, by the recorded facts: the Lease's every version, and when each
    // process says it became leader (its log's timestamp; every process runs on this machine's clock).
    const id = (p: ControllerProcess) => identities[candidates.indexOf(p)]!;
    const versions = lease.events.filter((e) => e.type !== 'DELETED').map((e) => e.object.spec!);
    const holders = versions
      .map((v) => v.holderIdentity ?? '')
      .filter((h, i, all) => i === 0 || h !== all[i - 1]);
    assert.deepEqual(holders, [id(first), id(second), '', id(third)], 'the Lease changed hands exactly so');
    for (let i = 1; i < versions.length; i++) {
      const [prev, next] = [versions[i - 1]!, versions[i]!];
      if (next.holderIdentity === prev.holderIdentity || !next.holderIdentity) {
        assert.equal(
          next.leaseTransitions,
          prev.leaseTransitions,
          `version ${i}: a renewal or release is no transition`,
        );
        continue;
      }
      assert.equal(
        next.leaseTransitions,
        (prev.leaseTransitions ?? 0) + 1,
        `version ${i}: a new holder counts a transition`,
      );
      if (prev.holderIdentity) {
        // Taken from a holder that did not release it: only once its last renewal had expired.
        const expiry = Date.parse(String(prev.renewTime)) + prev.leaseDurationSeconds! * 1000;
        assert.ok(
          Date.parse(String(next.acquireTime)) >= expiry,
          `${next.holderIdentity} took the Lease at ${String(next.acquireTime)}, before ${prev.holderIdentity}'s expired at ${new Date(expiry).toISOString()}`,
        );
      }
    }
    const became = (p: ControllerProcess) =>
      p.logs.filter((l) => l.msg === 'Became leader').map((l) => Date.parse(String(l.ts)));
    for (const p of candidates)
      assert.ok(became(p).length <= 1, `${id(p)} became leader ${became(p).length} times`);
    const lastRenewal = (holder: string) =>
      versions
        .filter((v) => v.holderIdentity === holder)
        .map((v) => Date.parse(String(v.renewTime)))
        .at(-1)!;
    const releasedAt = Date.parse(String(versions.find((v) => v.holderIdentity === '')!.renewTime));
    assert.deepEqual(became(third), [became(third)[0]], `${id(third)} says it became leader`);
    assert.ok(
      became(second)[0]! > firstDiedAt && became(second)[0]! >= lastRenewal(id(first)) + leaseMs,
      `${id(second)} led from ${new Date(became(second)[0]!).toISOString()}: before ${id(first)} died (${new Date(firstDiedAt).toISOString()}) or its lease expired`,
    );
    assert.ok(
      became(third)[0]! > releasedAt,
      `${id(third)} led from ${new Date(became(third)[0]!).toISOString()}, before ${id(second)} released the Lease at ${new Date(releasedAt).toISOString()}`,
    );
    assert.ok(
      became(first)[0]! < became(second)[0]! && became(second)[0]! < became(third)[0]!,
      'one after the other',
    );
  });
});
