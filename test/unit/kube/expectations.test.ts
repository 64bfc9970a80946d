import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from '../../../src/kube/clock.js';
import { Expectations } from '../../../src/kube/expectations.js';

function setup<P>(ttlMs = 1000) {
  const clock = new FakeClock(0);
  return { clock, expectations: new Expectations<P>(clock, ttlMs) };
}

describe('Expectations', () => {
  it('keeps a write pending until it is observed', () => {
    const { expectations } = setup<string>();
    expectations.expect('ns/a', 'A');
    expectations.expect('ns/b', 'B');
    assert.deepEqual(expectations.pending(), ['A', 'B']);
    expectations.observe('ns/a');
    assert.deepEqual(expectations.pending(), ['B']);
    expectations.observe('ns/unknown');
    assert.deepEqual(expectations.pending(), ['B']);
  });

  it('meets an expectation only with the observation it waits for', () => {
    const { expectations } = setup<{ action: 'create' | 'delete' }>();
    expectations.expect('ns/a', { action: 'delete' });
    const deletion = (gone: boolean) => (e: { action: string }) => e.action === 'create' || gone;
    expectations.observe('ns/a', deletion(false));
    assert.equal(expectations.pending().length, 1, 'an update of an object still there is not its deletion');
    expectations.observe('ns/a', deletion(true));
    assert.equal(expectations.pending().length, 0);
  });

  it('replaces what was expected of a key when the key is written again', () => {
    const { clock, expectations } = setup<string>(1000);
    expectations.expect('ns/a', 'first');
    clock.advance(600);
    expectations.expect('ns/a', 'second');
    clock.advance(600);
    assert.deepEqual(expectations.pending(), ['second'], 'with a fresh time to live');
  });

  it('gives up on an expectation once its time to live has passed', () => {
    const { clock, expectations } = setup<string>(1000);
    expectations.expect('ns/a', 'A');
    clock.advance(999);
    assert.deepEqual(expectations.pending(), ['A']);
    clock.advance(1);
    assert.deepEqual(expectations.pending(), []);
  });

  it('drops, when read, the expectations the cache shows by now', () => {
    const { expectations } = setup<{ uid: string }>();
    expectations.expect('ns/a', { uid: '1' });
    expectations.expect('ns/b', { uid: '2' });
    const cache = new Map([['ns/a', { uid: '1' }]]);
    const seen: string[] = [];
    const pending = expectations.pending((key, e) => {
      seen.push(key);
      return cache.get(key)?.uid === e.uid;
    });
    assert.deepEqual(pending, [{ uid: '2' }]);
    assert.deepEqual(seen, ['ns/a', 'ns/b']);
    assert.deepEqual(expectations.pending(), [{ uid: '2' }], 'an observed one stays dropped');
  });

  it('cancels a write that failed, or every expectation of one owner', () => {
    const { expectations } = setup<{ owner: string }>();
    expectations.expect('ns/a', { owner: 'w1' });
    expectations.expect('ns/b', { owner: 'w1' });
    expectations.expect('ns/c', { owner: 'w2' });
    expectations.cancel('ns/a');
    assert.equal(expectations.pending().length, 2);
    expectations.cancelAll((e) => e.owner === 'w1');
    assert.deepEqual(expectations.pending(), [{ owner: 'w2' }]);
  });

  it('says how long until the last pending expectation of an owner expires', () => {
    const { clock, expectations } = setup<{ owner: string }>(1000);
    const of = (owner: string) => (e: { owner: string }) => e.owner === owner;
    assert.equal(expectations.pendingMs(), 0, 'none pending');
    expectations.expect('ns/a', { owner: 'w1' });
    clock.advance(400);
    expectations.expect('ns/b', { owner: 'w1' });
    expectations.expect('ns/c', { owner: 'w2' });
    clock.advance(100);
    assert.equal(expectations.pendingMs(of('w1')), 900);
    assert.equal(expectations.pendingMs(of('w3')), 0);
    expectations.observe('ns/b');
    assert.equal(expectations.pendingMs(of('w1')), 500);
    clock.advance(500);
    assert.equal(expectations.pendingMs(of('w1')), 0, 'expired');
    assert.equal(expectations.pendingMs(), 400, 'w2 is still pending');
  });
});
