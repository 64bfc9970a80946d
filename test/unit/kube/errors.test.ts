import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { errorCode, isConflict, isGone, isNotFound, StatusError } from '../../../src/kube/errors.js';
import { MicroTime } from '../../../src/kube/microtime.js';

describe('errors', () => {
  it('reads the HTTP status of apiserver errors, not of network errors', () => {
    // client-node's ApiException has the same shape: a numeric `code`.
    const apiException = Object.assign(new Error('HTTP-Code: 404'), { code: 404, body: '{}' });
    assert.equal(errorCode(apiException), 404);
    assert.equal(isNotFound(apiException), true);
    assert.equal(isConflict(new StatusError(409, 'conflict')), true);
    assert.equal(isGone(new StatusError(410, 'expired')), true);
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    assert.equal(errorCode(refused), undefined);
    assert.equal(errorCode(undefined), undefined);
    assert.equal(errorCode(null), undefined);
  });
});

describe('MicroTime', () => {
  it('serialises with six fractional digits', () => {
    const t = new MicroTime(Date.parse('2025-01-02T03:04:05.678Z'));
    assert.equal(t.toISOString(), '2025-01-02T03:04:05.678000Z');
    assert.equal(JSON.stringify({ t }), '{"t":"2025-01-02T03:04:05.678000Z"}');
  });
});
