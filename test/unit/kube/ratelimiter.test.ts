import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Backoff } from '../../../src/kube/backoff.js';
import { FakeClock } from '../../../src/kube/clock.js';
import {
  BucketRateLimiter,
  defaultControllerRateLimiter,
  ItemExponentialFailureRateLimiter,
  MaxOfRateLimiter,
} from '../../../src/kube/ratelimiter.js';

describe('ItemExponentialFailureRateLimiter', () => {
  it('doubles from the base per failure and caps at the maximum', () => {
    const rl = new ItemExponentialFailureRateLimiter<string>(5, 1_000_000);
    const delays = Array.from({ length: 20 }, () => rl.when('a'));
    assert.deepEqual(delays.slice(0, 5), [5, 10, 20, 40, 80]);
    assert.equal(delays[17], 5 * 2 ** 17); // 655.36 s
    assert.equal(delays[18], 1_000_000); // 1310.72 s, capped at 1000 s
    assert.equal(rl.numRequeues('a'), 20);
  });

  it('tracks items separately and forgets them', () => {
    const rl = new ItemExponentialFailureRateLimiter<string>(5, 1000);
    rl.when('a');
    rl.when('a');
    assert.equal(rl.when('b'), 5);
    rl.forget('a');
    assert.equal(rl.numRequeues('a'), 0);
    assert.equal(rl.when('a'), 5);
  });

  it('does not overflow after very many failures', () => {
    const rl = new ItemExponentialFailureRateLimiter<string>(5, 1000);
    for (let i = 0; i < 5000; i++) rl.when('a');
    assert.equal(rl.when('a'), 1000);
  });
});

describe('BucketRateLimiter', () => {
  it('lets a burst through, then spaces retries at 1/qps', () => {
    const clock = new FakeClock();
    const rl = new BucketRateLimiter<string>(10, 100, clock);
    for (let i = 0; i < 100; i++) assert.equal(rl.when(`k${i}`), 0);
    assert.equal(Math.round(rl.when('x')), 100);
    assert.equal(Math.round(rl.when('y')), 200);
    assert.equal(Math.round(rl.when('z')), 300);
  });

  it('refills at qps, up to the burst', () => {
    const clock = new FakeClock();
    const rl = new BucketRateLimiter<string>(10, 5, clock);
    for (let i = 0; i < 5; i++) rl.when('a');
    clock.advance(200); // two tokens back
    assert.equal(rl.when('a'), 0);
    assert.equal(rl.when('a'), 0);
    assert.equal(Math.round(rl.when('a')), 100);
    clock.advance(60_000); // long idle: back to the burst, not beyond
    for (let i = 0; i < 5; i++) assert.equal(rl.when('a'), 0);
    assert.ok(rl.when('a') > 0);
  });
});

describe('defaultControllerRateLimiter', () => {
  it('is the max of per-item backoff and the overall bucket', () => {
    const clock = new FakeClock();
    const rl = defaultControllerRateLimiter<string>(clock);
    assert.equal(rl.when('a'), 5);
    assert.equal(rl.when('a'), 10);
    for (let i = 0; i < 98; i++) rl.when(`k${i}`); // burst used up
    // per-item says 5 ms for a new key, the bucket says 100 ms: the bucket wins
    assert.equal(Math.round(rl.when('new')), 100);
    assert.equal(rl.numRequeues('a'), 2);
    rl.forget('a');
    assert.equal(rl.numRequeues('a'), 0);
  });

  it('MaxOf forgets in every limiter', () => {
    const a = new ItemExponentialFailureRateLimiter<string>(1, 100);
    const b = new ItemExponentialFailureRateLimiter<string>(3, 100);
    const rl = new MaxOfRateLimiter(a, b);
    assert.equal(rl.when('k'), 3);
    assert.equal(rl.when('k'), 6);
    rl.forget('k');
    assert.equal(a.numRequeues('k') + b.numRequeues('k'), 0);
  });
});

describe('Backoff', () => {
  it('doubles to the cap, with jitter only ever shortening', () => {
    const b = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0, random: () => 0.99 });
    assert.deepEqual(
      Array.from({ length: 6 }, () => b.next()),
      [100, 200, 400, 800, 1000, 1000],
    );
    b.reset();
    assert.equal(b.next(), 100);
    const jittered = new Backoff({ initialMs: 1000, maxMs: 1000, jitter: 0.5, random: () => 1 });
    assert.equal(jittered.next(), 500);
  });
});
