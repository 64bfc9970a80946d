// Process bookkeeping of the local cluster: a stopped daemon counts as gone even before its parent
// reaps it, or stopping it would wait forever while the parent is busy.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { isAlive } from '../../../src/localcluster/proc.js';

describe('isAlive', () => {
  it('is true for a running process and false for one that exited but is not reaped yet', () => {
    assert.equal(isAlive(process.pid), true);
    const child = spawn('true');
    // Block the event loop, so Node cannot reap the child: it stays a zombie meanwhile.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
    process.kill(child.pid!, 0); // a zombie still takes signal 0...
    assert.equal(isAlive(child.pid!), false); // ...but it is not alive
  });

  it('is false for a process that does not exist', () => {
    assert.equal(isAlive(2 ** 22 + 12345), false);
  });
});
