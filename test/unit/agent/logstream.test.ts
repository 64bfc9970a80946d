// A Container's log across its attempts, from files laid out as the runtime writes them.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { NoPreviousRun, readLog, splitComplete } from '../../../src/agent/logstream.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-logstream-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

let n = 0;
function logDir(attempts: Record<number, string[]>): string {
  const dir = path.join(root, `ns_c_${n++}`);
  fs.mkdirSync(path.join(dir, 'container'), { recursive: true });
  for (const [a, lines] of Object.entries(attempts)) write(dir, Number(a), lines);
  return dir;
}

function write(dir: string, attempt: number, lines: string[]): void {
  fs.appendFileSync(path.join(dir, 'container', `${attempt}.log`), lines.map((l) => `${l}\n`).join(''));
}

const line = (i: number, text: string, tag = 'F') =>
  `2026-01-01T00:00:0${i}.000000000Z stdout ${tag} ${text}`;

async function collect(gen: AsyncGenerator<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const l of gen) out.push(l);
  return out;
}

describe('readLog', () => {
  const dir = logDir({ 0: [line(1, 'a'), line(2, 'b')], 1: [line(3, 'c')], 2: [line(4, 'd'), line(5, 'e')] });
  const source = { dir, done: () => true };

  it('shows every attempt in order, as docker logs does after a restart', async () => {
    assert.deepEqual(await collect(readLog(source, {})), ['a\n', 'b\n', 'c\n', 'd\n', 'e\n']);
  });

  it('previous: only the attempt before the current one', async () => {
    assert.deepEqual(await collect(readLog(source, { previous: true })), ['c\n']);
  });

  it('tail counts lines across attempts, and timestamps prefix the runtime time', async () => {
    assert.deepEqual(await collect(readLog(source, { tail: 3 })), ['c\n', 'd\n', 'e\n']);
    assert.deepEqual(await collect(readLog(source, { tail: 0 })), []);
    assert.deepEqual(await collect(readLog(source, { tail: 1, timestamps: true })), [
      '2026-01-01T00:00:05.000000000Z e\n',
    ]);
  });

  it('previous of a container that never restarted says so', async () => {
    const once = { dir: logDir({ 0: [line(1, 'only')] }), done: () => true };
    await assert.rejects(collect(readLog(once, { previous: true })), NoPreviousRun);
  });

  it('a partial line waits for the line that completes it', async () => {
    const partial = logDir({ 0: [line(1, 'done'), line(2, 'half ', 'P')] });
    assert.deepEqual(await collect(readLog({ dir: partial, done: () => false }, {})), ['done\n']);
    assert.deepEqual(splitComplete(`${line(1, 'x')}\n${line(2, 'y', 'P')}\n`), [
      `${line(1, 'x')}\n`,
      `${line(2, 'y', 'P')}\n`,
    ]);
  });

  it('follow goes on into the next attempt after a restart, and ends when the container is done', async () => {
    const followed = logDir({ 0: [line(1, 'first')] });
    let done = false;
    const gen = readLog({ dir: followed, done: () => done, pollMs: 10 }, { follow: true });
    const seen: string[] = [];
    const reading = (async () => {
      for await (const l of gen) seen.push(l);
    })();
    const until = async (count: number) => {
      for (let i = 0; i < 500 && seen.length < count; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(seen.length, count, `saw ${JSON.stringify(seen)}`);
    };
    await until(1);
    write(followed, 0, [line(2, 'second'), line(3, 'par', 'P')]);
    await until(2);
    // The restart: the old attempt's dangling fragment is its last output.
    write(followed, 1, [line(4, 'after restart')]);
    await until(4);
    write(followed, 1, [line(5, 'last')]);
    done = true;
    await reading;
    assert.deepEqual(seen, ['first\n', 'second\n', 'par\n', 'after restart\n', 'last\n']);
  });

  it('reads rotated files first, and follows on across a rotation without losing a line', async () => {
    const rotating = logDir({ 0: [line(1, 'one')] });
    const current = path.join(rotating, 'container', '0.log');
    fs.renameSync(current, `${current}.20260101-000001.000`);
    write(rotating, 0, [line(2, 'two')]);
    let done = false;
    const seen: string[] = [];
    const reading = (async () => {
      const gen = readLog({ dir: rotating, done: () => done, pollMs: 10 }, { follow: true });
      for await (const l of gen) seen.push(l);
    })();
    const until = async (count: number) => {
      for (let i = 0; i < 500 && seen.length < count; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(seen.length, count, `saw ${JSON.stringify(seen)}`);
    };
    await until(2);
    // A rotation as the agent makes it: a last line into the file, renamed aside, a new one opened.
    write(rotating, 0, [line(3, 'three')]);
    fs.renameSync(current, `${current}.20260101-000002.000`);
    write(rotating, 0, [line(4, 'four')]);
    await until(4);
    done = true;
    await reading;
    assert.deepEqual(seen, ['one\n', 'two\n', 'three\n', 'four\n']);
  });

  it('follow stops when the reader goes away', async () => {
    const quiet = logDir({ 0: [line(1, 'x')] });
    const stop = new AbortController();
    const gen = readLog({ dir: quiet, done: () => false, pollMs: 10 }, { follow: true }, stop.signal);
    setTimeout(() => stop.abort(), 50);
    assert.deepEqual(await collect(gen), ['x\n']);
  });
});
