import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCriLog } from '../../../src/agent/logs.js';

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
