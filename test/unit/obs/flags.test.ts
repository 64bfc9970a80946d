// The one options parser of Gantry's processes: flag, then environment variable, then default.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { parseFlags } from '../../../src/obs/flags.js';

const schema = z.object({ bindAddress: z.string(), workers: z.coerce.number().int().min(1) });
const defaults = { bindAddress: '127.0.0.1:8080', workers: '4' };

describe('parseFlags', () => {
  it('takes a flag over its environment variable, and that over the default', () => {
    const env = { GANTRY_TEST_BIND_ADDRESS: '127.0.0.1:9090', GANTRY_TEST_WORKERS: '2' };
    assert.deepEqual(parseFlags(schema, defaults, 'GANTRY_TEST', ['--workers=8'], env), {
      bindAddress: '127.0.0.1:9090',
      workers: 8,
    });
    assert.deepEqual(parseFlags(schema, defaults, 'GANTRY_TEST', [], {}), {
      bindAddress: '127.0.0.1:8080',
      workers: 4,
    });
  });

  it('names the flag of a bad value, and refuses an unknown flag', () => {
    assert.throws(() => parseFlags(schema, defaults, 'GANTRY_TEST', ['--workers=0'], {}), /--workers: /);
    assert.throws(() => parseFlags(schema, defaults, 'GANTRY_TEST', ['--wrokers=2'], {}), /wrokers/);
  });
});
