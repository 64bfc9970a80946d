// The Workload's planning maths: fenceposts, the scale-down order, and whole rollouts simulated
// step by step, checking maxUnavailable and maxSurge after every step.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  deletionOrder,
  maxUnavailable,
  planRollout,
  resolveFenceposts,
  type IntOrPercent,
  type Replica,
  type Strategy,
} from '../../../src/controller/rollout.js';

let clock = 0;
function replica(name: string, revision: string, over: Partial<Replica> = {}): Replica {
  return {
    name,
    revision,
    ready: true,
    nodeName: 'h1',
    createdAt: ++clock,
    deleting: false,
    finished: false,
    ...over,
  };
}

const rolling = (maxSurge: IntOrPercent, maxUnavailable: IntOrPercent): Strategy => ({
  type: 'RollingUpdate',
  maxSurge,
  maxUnavailable,
});

describe('resolveFenceposts', () => {
  it('rounds maxSurge up and maxUnavailable down, as Deployment does', () => {
    assert.deepEqual(resolveFenceposts('25%', '25%', 4), [1, 1]);
    assert.deepEqual(resolveFenceposts('25%', '25%', 10), [3, 2]);
    assert.deepEqual(resolveFenceposts('10%', '10%', 3), [1, 0]);
    assert.deepEqual(resolveFenceposts(2, 0, 5), [2, 0]);
  });

  it('makes maxUnavailable 1 when both come out as 0', () => {
    assert.deepEqual(resolveFenceposts('0%', '10%', 3), [0, 1]);
    assert.deepEqual(resolveFenceposts(0, 0, 3), [0, 1]);
  });

  it('gives Recreate and zero replicas no unavailability budget', () => {
    assert.equal(maxUnavailable({ type: 'Recreate' }, 4), 0);
    assert.equal(maxUnavailable(rolling(1, '50%'), 0), 0);
    assert.equal(maxUnavailable(rolling(0, 10), 4), 4);
  });
});

describe('planRollout: scaling', () => {
  it('creates up to replicas', () => {
    assert.deepEqual(planRollout({ replicas: 3, revision: 'a', strategy: rolling(1, 1), containers: [] }), {
      create: 3,
      delete: [],
    });
  });

  it('scales down unscheduled first, then not ready, then the fullest Host, then the newest', () => {
    const containers = [
      replica('old-on-h2', 'a', { nodeName: 'h2' }),
      replica('h1-old', 'a'),
      replica('h1-new', 'a'),
      replica('unready', 'a', { nodeName: 'h2', ready: false }),
      replica('unscheduled', 'a', { nodeName: undefined, ready: false }),
    ];
    const plan = (replicas: number) =>
      planRollout({ replicas, revision: 'a', strategy: rolling(1, 1), containers }).delete;
    assert.deepEqual(plan(4), ['unscheduled']);
    assert.deepEqual(plan(2), ['unscheduled', 'unready', 'h1-new']);
    assert.deepEqual(plan(0), ['unscheduled', 'unready', 'h1-new', 'h1-old', 'old-on-h2']);
  });

  it('ignores Containers being deleted and replaces finished ones', () => {
    const containers = [
      replica('going', 'a', { deleting: true }),
      replica('done', 'a', { finished: true }),
      replica('up', 'a'),
    ];
    assert.deepEqual(planRollout({ replicas: 2, revision: 'a', strategy: rolling(1, 1), containers }), {
      create: 1,
      delete: ['done'],
    });
  });

  it('orders deletion candidates deterministically by name when all else is equal', () => {
    const same = { createdAt: 5 };
    const all = [replica('b', 'a', same), replica('a', 'a', same)];
    assert.deepEqual(
      deletionOrder(all, all).map((r) => r.name),
      ['a', 'b'],
    );
  });
});

interface World {
  containers: Replica[];
  next: number;
}

/**
 * Runs planRollout until it has nothing to do and every Container is ready: after each plan,
 * deletions take effect, creations appear unready, and then `readyPerStep` of the unready current
 * Containers become ready. Checks the surge and availability limits after each plan is applied.
 */
function simulate(
  replicas: number,
  strategy: Strategy,
  readyPerStep: number,
  start: World,
  revision = 'new',
): { steps: number; world: World } {
  const world = start;
  const [surge, unavailable] =
    strategy.type === 'RollingUpdate'
      ? resolveFenceposts(strategy.maxSurge, strategy.maxUnavailable, replicas)
      : [0, replicas];
  for (let step = 1; step <= 200; step++) {
    const plan = planRollout({ replicas, revision, strategy, containers: world.containers });
    const idle = plan.create === 0 && plan.delete.length === 0;
    if (idle && world.containers.every((c) => c.ready)) return { steps: step, world };
    world.containers = world.containers.filter((c) => !plan.delete.includes(c.name));
    for (let i = 0; i < plan.create; i++)
      world.containers.push(replica(`c${world.next++}`, revision, { ready: false }));
    const ready = world.containers.filter((c) => c.ready).length;
    assert.ok(
      ready >= replicas - unavailable,
      `step ${step}: ${ready} ready, limit ${replicas - unavailable}`,
    );
    assert.ok(world.containers.length <= replicas + surge, `step ${step}: ${world.containers.length} exist`);
    let toReady = readyPerStep;
    for (const c of world.containers)
      if (!c.ready && c.revision === revision && toReady-- > 0) c.ready = true;
  }
  throw new Error('the rollout did not finish in 200 steps');
}

const oldWorld = (n: number): World => ({
  containers: Array.from({ length: n }, (_, i) => replica(`old${i}`, 'old')),
  next: 0,
});

describe('planRollout: rolling update', () => {
  const cases: [replicas: number, surge: IntOrPercent, unavailable: IntOrPercent][] = [
    [4, 1, 1],
    [4, '25%', '25%'],
    [4, 0, 1],
    [4, 1, 0],
    [10, '25%', '25%'],
    [10, '50%', 0],
    [3, '10%', '10%'],
    [1, 1, 0],
    [5, 2, 3],
  ];
  for (const [replicas, surge, unavailable] of cases) {
    for (const readyPerStep of [1, 100]) {
      it(`replaces ${replicas} replicas within maxSurge ${surge} and maxUnavailable ${unavailable} (${readyPerStep} ready per step)`, () => {
        const { world } = simulate(replicas, rolling(surge, unavailable), readyPerStep, oldWorld(replicas));
        assert.equal(world.containers.length, replicas);
        assert.deepEqual(
          world.containers.filter((c) => c.revision !== 'new' || !c.ready),
          [],
          'every Container is new and ready',
        );
      });
    }
  }

  it('removes unready old Containers before ready ones', () => {
    const containers = [
      replica('ok', 'old'),
      replica('broken', 'old', { ready: false }),
      replica('n', 'new'),
    ];
    const plan = planRollout({ replicas: 2, revision: 'new', strategy: rolling(1, 0), containers });
    assert.deepEqual(plan, { create: 0, delete: ['broken'] });
  });

  it('rolls back when the old template returns: its Containers are current again', () => {
    const containers = [replica('o1', 'v1'), replica('o2', 'v1'), replica('n1', 'v2', { ready: false })];
    const plan = planRollout({ replicas: 2, revision: 'v1', strategy: rolling(1, 0), containers });
    assert.deepEqual(plan, { create: 0, delete: ['n1'] });
  });

  it('finishes when replicas change in the middle of a rollout', () => {
    const start: World = {
      containers: [replica('o1', 'old'), replica('o2', 'old'), replica('n1', 'new'), replica('n2', 'new')],
      next: 10,
    };
    const { world } = simulate(2, rolling(1, 1), 1, start);
    assert.deepEqual(world.containers.map((c) => c.revision).sort(), ['new', 'new']);
  });
});

describe('planRollout: recreate', () => {
  it('deletes every old Container, waits until they are gone, then creates the new ones', () => {
    const recreate: Strategy = { type: 'Recreate' };
    const old = [replica('o1', 'old'), replica('o2', 'old')];
    assert.deepEqual(planRollout({ replicas: 2, revision: 'new', strategy: recreate, containers: old }), {
      create: 0,
      delete: ['o1', 'o2'],
    });
    const deleting = old.map((c) => ({ ...c, deleting: true }));
    assert.deepEqual(
      planRollout({ replicas: 2, revision: 'new', strategy: recreate, containers: deleting }),
      {
        create: 0,
        delete: [],
      },
    );
    assert.deepEqual(planRollout({ replicas: 2, revision: 'new', strategy: recreate, containers: [] }), {
      create: 2,
      delete: [],
    });
  });
});
