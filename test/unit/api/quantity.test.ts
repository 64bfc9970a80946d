// Quantities compare as the apiserver's resource.Quantity does (the zod side of the limits >= requests rule).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compareQuantities, isQuantity, quantityNanos } from '../../../src/api/v1alpha1/quantity.js';

describe('quantities', () => {
  it('accepts the Kubernetes grammar without a sign', () => {
    for (const q of [
      '0',
      '1',
      '1.5',
      '.5',
      '5.',
      '500m',
      '100n',
      '2u',
      '1k',
      '1M',
      '1Gi',
      '1Ei',
      '1e3',
      '1E3',
      '1e-3',
      '1.5e+2',
      7,
    ]) {
      assert.ok(isQuantity(q), String(q));
    }
    for (const q of [
      '',
      '-1',
      '+1',
      '1 ',
      '1K',
      '1mi',
      '1e',
      '1e1.5',
      '1e1000',
      'm',
      '1ki',
      'one',
      -1,
      1.5,
    ]) {
      assert.ok(!isQuantity(q), String(q));
    }
  });

  it('reads suffixes and exponents exactly', () => {
    assert.equal(quantityNanos('1'), 1_000_000_000n);
    assert.equal(quantityNanos(2), 2_000_000_000n);
    assert.equal(quantityNanos('500m'), 500_000_000n);
    assert.equal(quantityNanos('1Ki'), 1024n * 1_000_000_000n);
    assert.equal(quantityNanos('1.5e3'), 1_500n * 1_000_000_000n);
    assert.equal(quantityNanos('1E'), 10n ** 18n * 1_000_000_000n);
  });

  it('rounds up below one nano-unit and caps at 2^63-1, as resource.Quantity does', () => {
    assert.equal(quantityNanos('0.1n'), 1n);
    assert.equal(quantityNanos('1e-30'), 1n);
    assert.equal(quantityNanos('0.0'), 0n);
    assert.equal(compareQuantities('1e30', '1e40'), 0);
    assert.equal(compareQuantities('0.1n', '1n'), 0);
  });

  it('compares across notations', () => {
    assert.equal(compareQuantities('1Gi', '1G'), 1);
    assert.equal(compareQuantities('1000m', 1), 0);
    assert.equal(compareQuantities('0.5', '500m'), 0);
    assert.equal(compareQuantities('128Mi', '134217728'), 0);
    assert.equal(compareQuantities('200m', '0.5'), -1);
    assert.equal(compareQuantities('1e3', '1k'), 0);
  });
});
