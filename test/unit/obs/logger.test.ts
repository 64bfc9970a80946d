import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger, parseLogLevel } from '../../../src/obs/logger.js';

function capture(level?: string) {
  const stream = new PassThrough();
  const lines: Record<string, unknown>[] = [];
  stream.on('data', (c: Buffer) => {
    for (const l of c.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
  });
  return { log: createLogger({ level, stream, fields: { component: 'test' } }), lines };
}

describe('logger', () => {
  it('writes one JSON object per line: ts, level, constant msg, data in keys', () => {
    const { log, lines } = capture();
    log.info('Reconcile finished', { key: 'ns/a', seconds: 0.5 });
    assert.equal(lines.length, 1);
    const line = lines[0]!;
    assert.deepEqual(Object.keys(line).slice(0, 3), ['ts', 'level', 'msg']);
    assert.match(String(line.ts), /^\d{4}-\d\d-\d\dT/);
    assert.deepEqual(
      { ...line, ts: undefined },
      {
        ts: undefined,
        level: 'info',
        msg: 'Reconcile finished',
        component: 'test',
        key: 'ns/a',
        seconds: 0.5,
      },
    );
  });

  it('child loggers add their fields', () => {
    const { log, lines } = capture();
    log.child({ controller: 'workload' }).child({ name: 'web' }).warn('Hello');
    assert.equal(lines[0]!.controller, 'workload');
    assert.equal(lines[0]!.name, 'web');
    assert.equal(lines[0]!.component, 'test');
  });

  it('logs errors as their message (and the stack at debug)', () => {
    const { log, lines } = capture('debug');
    log.error('Reconciler error', { err: new Error('boom') });
    assert.equal(lines[0]!.err, 'boom');
    assert.match(String(lines[0]!.errStack), /Error: boom/);
    const quiet = capture('info');
    quiet.log.error('Reconciler error', { err: new Error('boom') });
    assert.equal(quiet.lines[0]!.errStack, undefined);
  });

  it('filters by level', () => {
    const { log, lines } = capture('warn');
    log.info('dropped');
    log.debug('dropped');
    log.warn('kept');
    log.error('kept');
    assert.deepEqual(
      lines.map((l) => l.level),
      ['warn', 'error'],
    );
  });

  it('takes the level from the option, else LOG_LEVEL, else info', () => {
    const saved = process.env.LOG_LEVEL;
    try {
      process.env.LOG_LEVEL = 'debug';
      assert.equal(createLogger({ stream: new PassThrough() }).level, 'debug');
      assert.equal(createLogger({ level: 'error', stream: new PassThrough() }).level, 'error');
      delete process.env.LOG_LEVEL;
      assert.equal(createLogger({ stream: new PassThrough() }).level, 'info');
    } finally {
      if (saved === undefined) delete process.env.LOG_LEVEL;
      else process.env.LOG_LEVEL = saved;
    }
    assert.equal(parseLogLevel('WARN'), 'warn');
    assert.throws(() => parseLogLevel('verbose'), /unknown log level/);
  });
});
