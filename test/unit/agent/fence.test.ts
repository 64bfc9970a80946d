// The fence goes up after fence-after without a successful heartbeat renewal, counted from when
// that renewal was sent, and down with the next one; 0 turns it off.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Fence } from '../../../src/agent/fence.js';
import { FakeClock } from '../../../src/kube/clock.js';

describe('Fence', () => {
  it('goes up after fence-after without a renewal, and down with the next one', () => {
    const clock = new FakeClock(0);
    const fence = new Fence(6_000, clock);
    const changes: boolean[] = [];
    fence.onChange((up) => changes.push(up));
    clock.advance(2_000);
    fence.renewed(1_500); // sent at 1.5 s, answered at 2 s: the clock counts from 1.5 s
    clock.advance(5_400);
    fence.check();
    assert.equal(fence.up, false, '5.9 s since the renewal was sent');
    clock.advance(200);
    fence.check();
    assert.equal(fence.up, true);
    fence.check();
    fence.renewed(clock.now());
    assert.equal(fence.up, false);
    assert.deepEqual(changes, [true, false], 'each change reported once');
  });

  it('an older renewal answered late does not move the clock back', () => {
    const clock = new FakeClock(10_000);
    const fence = new Fence(6_000, clock);
    fence.renewed(9_000);
    clock.advance(5_500);
    fence.check();
    assert.equal(fence.up, false, 'counted from 10 s (start), not from 9 s');
  });

  it('never goes up when fence-after is 0', () => {
    const clock = new FakeClock(0);
    const fence = new Fence(0, clock);
    clock.advance(3_600_000);
    fence.check();
    assert.equal(fence.up, false);
  });
});
