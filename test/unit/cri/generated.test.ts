// src/cri/generated/ is proto-loader-gen-types' output for runtime.proto, run with the flags of the
// options the client loads the proto with: regenerated into a scratch directory, it must match
// byte for byte (as crds/ must match the zod schemas).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import {
  GENERATED_DIR,
  HEADER,
  conversionFlags,
  generateCriTypes,
  listFiles,
} from '../../../src/cri/codegen.js';
import { LOADER_OPTIONS } from '../../../src/cri/schema.js';

describe('generated CRI types', () => {
  it('src/cri/generated/ matches runtime.proto (run `npm run gen:cri` after changing it)', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-gen-cri-test-'));
    try {
      generateCriTypes(tmp);
      const expected = listFiles(tmp);
      assert.ok(expected.length > 0, 'the generator wrote nothing');
      assert.deepEqual(
        listFiles(GENERATED_DIR),
        expected,
        'src/cri/generated/ has missing or stale files: run `npm run gen:cri`',
      );
      for (const file of expected) {
        const want = fs.readFileSync(path.join(tmp, file), 'utf8');
        const got = fs.readFileSync(path.join(GENERATED_DIR, file), 'utf8');
        if (got === want) continue;
        const wantLines = want.split('\n');
        const gotLines = got.split('\n');
        const line = wantLines.findIndex((l, i) => l !== gotLines[i]);
        assert.fail(
          `src/cri/generated/${file} is out of date with runtime.proto: run \`npm run gen:cri\`\n` +
            `first difference at line ${line + 1}:\n  file:      ${gotLines[line] ?? '(end of file)'}\n` +
            `  generated: ${wantLines[line] ?? '(end of file)'}`,
        );
      }
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('starts each file with the generated header', () => {
    for (const file of listFiles(GENERATED_DIR)) {
      assert.ok(
        fs.readFileSync(path.join(GENERATED_DIR, file), 'utf8').startsWith(HEADER),
        `src/cri/generated/${file} lacks the header`,
      );
    }
  });

  it("runs the generator with the client's loader options as flags", () => {
    assert.deepEqual(conversionFlags(LOADER_OPTIONS), ['--enums=String', '--defaults']);
    assert.deepEqual(conversionFlags({ keepCase: true, longs: String, bytes: Array, oneofs: false }), [
      '--keepCase',
      '--longs=String',
      '--bytes=Array',
    ]);
    assert.throws(() => conversionFlags({ includeDirs: ['x'] }), /includeDirs/);
    assert.throws(() => conversionFlags({ longs: BigInt }), /longs/);
  });
});
