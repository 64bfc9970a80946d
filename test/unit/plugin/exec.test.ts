// exec's pure parts: the options on the wire (both servers read them back the same way) and the
// end of a command read from the runtime's Status.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { execQuery, HttpError, parseExecOptions } from '../../../src/kube/streaming.js';
import { channel, exitCodeOf, frame } from '../../../src/plugin/exec.js';

describe('exec options', () => {
  it('go on the wire as kubectl sends pods/exec, and are read back unchanged', () => {
    const o = { command: ['sh', '-c', 'echo "a b"'], stdin: true, stdout: true, stderr: false, tty: true };
    const q = execQuery(o);
    assert.equal(String(q), 'command=sh&command=-c&command=echo+%22a+b%22&stdin=true&stdout=true&tty=true');
    assert.deepEqual(parseExecOptions(q), o);
    assert.deepEqual(parseExecOptions(new URLSearchParams('command=ls&stdout=1')).stdout, true);
  });

  it('are refused with the apiserver’s reasons', () => {
    const refused = (q: string, message: string) =>
      assert.throws(
        () => parseExecOptions(new URLSearchParams(q)),
        (e: unknown) => e instanceof HttpError && e.code === 400 && e.message === message,
      );
    refused('stdout=true', 'you must specify a command');
    refused('command=ls', 'you must specify at least 1 of stdin, stdout, stderr');
    refused('command=sh&stdout=true&stderr=true&tty=true', 'tty and stderr cannot both be true');
  });
});

describe("a command's end", () => {
  it('is its exit code: 0 on Success, the ExitCode cause otherwise', () => {
    assert.equal(exitCodeOf({ status: 'Success' }), 0);
    assert.equal(
      exitCodeOf({
        status: 'Failure',
        reason: 'NonZeroExitCode',
        message:
          'command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3',
        details: { causes: [{ reason: 'ExitCode', message: '3' }] },
      }),
      3,
    );
  });

  it('is an error when the command could not run at all, in the runtime’s words', () => {
    assert.throws(
      () =>
        exitCodeOf({
          status: 'Failure',
          message: 'exec: "/no/such": stat /no/such: no such file or directory',
        }),
      /no such file or directory/,
    );
  });

  it('messages carry their channel in the first byte', () => {
    assert.deepEqual([...frame(channel.stdin, 'hi')], [0, 104, 105]);
    assert.deepEqual(JSON.parse(String(frame(channel.resize, '{"Width":80}').subarray(1))), { Width: 80 });
  });
});
