import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { attemptLogFiles, findContainerLogs, parseCriLog, readLogFiles } from '../../../src/agent/logs.js';

test('CRI log lines: streams kept apart, partial lines joined', () => {
  const content = [
    '2026-01-01T00:00:00.1Z stdout F hello',
    '2026-01-01T00:00:00.2Z stderr P par',
    '2026-01-01T00:00:00.3Z stderr F tial',
    '2026-01-01T00:00:00.4Z stdout F ',
    'garbage',
    '',
  ].join('\n');
  assert.deepEqual(parseCriLog(content), [
    { time: '2026-01-01T00:00:00.1Z', stream: 'stdout', text: 'hello' },
    { time: '2026-01-01T00:00:00.3Z', stream: 'stderr', text: 'partial' },
    { time: '2026-01-01T00:00:00.4Z', stream: 'stdout', text: '' },
  ]);
});

test('a rotated log reads as one: parts oldest first, a partial line joined across files, --tail from the end', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-logs-'));
  const dir = path.join(root, 'logs', 'ns_web_uid1', 'container');
  fs.mkdirSync(dir, { recursive: true });
  const line = (n: number, tag = 'F') => `2026-01-01T00:00:0${n}Z stdout ${tag} line ${n}\n`;
  fs.writeFileSync(path.join(dir, '0.log.20260101-000000.000'), line(1) + line(2));
  fs.writeFileSync(path.join(dir, '0.log.20260101-000005.000'), line(3) + line(4, 'P'));
  fs.writeFileSync(path.join(dir, '0.log'), line(5) + line(6));
  fs.writeFileSync(path.join(dir, '1.log.20260101-000009.000'), line(9)); // another attempt

  const logs = findContainerLogs([root], 'ns', 'web')!;
  assert.deepEqual(logs.attempts, [0]);
  const files = attemptLogFiles(logs, 0);
  assert.deepEqual(
    files.map((f) => path.basename(f)),
    ['0.log.20260101-000000.000', '0.log.20260101-000005.000', '0.log'],
  );
  const texts = (tail?: number) => readLogFiles(files, tail).lines.map((l) => l.text);
  assert.deepEqual(texts(), ['line 1', 'line 2', 'line 3', 'line 4line 5', 'line 6']);
  assert.deepEqual(texts(2), ['line 4line 5', 'line 6']);
  assert.deepEqual(texts(4), ['line 2', 'line 3', 'line 4line 5', 'line 6']);
  assert.equal(readLogFiles(files, 1).currentBytes, fs.statSync(path.join(dir, '0.log')).size);
  // A part rotated away between listing and reading is skipped.
  fs.rmSync(files[0]!);
  assert.deepEqual(texts(), ['line 3', 'line 4line 5', 'line 6']);
  fs.rmSync(root, { recursive: true });
});
