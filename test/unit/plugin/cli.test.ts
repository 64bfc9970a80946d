// The plugin's command line read as kubectl reads one, and its output as kubectl prints it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { commandIndex, main, type Command } from '../../../src/plugin/cli.js';
import { age, table } from '../../../src/plugin/output.js';
import { commands, portsColumn } from '../../../src/plugin/commands.js';
import { usageArguments } from '../../../src/plugin/completion.js';
import { humanSize } from '../../../src/plugin/images.js';
import { nameFromImage, parsePublish, run as runCommand } from '../../../src/plugin/lifecycle.js';
import type { Container } from '../../../src/api/v1alpha1/index.js';

function recorder(): { commands: Command[]; seen: { values: unknown; positionals: string[] }[] } {
  const seen: { values: unknown; positionals: string[] }[] = [];
  const echo: Command = {
    name: 'echo',
    summary: 'Echo',
    usage: 'WORDS',
    options: { tail: { type: 'string' } },
    run: async (ctx) => {
      seen.push({ values: ctx.values, positionals: ctx.positionals });
      return ctx.positionals.length;
    },
  };
  return { commands: [echo], seen };
}

/** Runs main with stderr captured. */
async function run(argv: string[], commands: Command[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    const code = await main(argv, commands, (s) => {
      out += s;
    });
    return { code, out, err };
  } finally {
    process.stderr.write = write;
  }
}

describe('kubectl gantry command line', () => {
  it('finds the command word after global flags and their values', () => {
    assert.equal(commandIndex(['-n', 'ns', '--kubeconfig', 'k', 'logs', 'x']), 4);
    assert.equal(commandIndex(['-A', 'ps']), 1);
    assert.equal(commandIndex(['--', 'ps']), -1);
    assert.equal(commandIndex([]), -1);
  });

  it("takes global flags on either side of the command, and the command's own", async () => {
    const { commands, seen } = recorder();
    const r = await run(['-n', 'ns', 'echo', 'a', '--tail', '3', 'b', '--context', 'c'], commands);
    assert.equal(r.code, 2, r.err);
    assert.deepEqual(seen[0]?.positionals, ['a', 'b']);
    assert.deepEqual({ ...(seen[0]?.values as object) }, { namespace: 'ns', tail: '3', context: 'c' });
  });

  it('refuses an unknown command or flag with exit code 1, saying where to read more', async () => {
    const { commands } = recorder();
    const unknown = await run(['bogus'], commands);
    assert.equal(unknown.code, 1);
    assert.equal(
      unknown.err,
      'error: unknown command "bogus" for "kubectl gantry"\nRun \'kubectl gantry --help\' for usage.\n',
    );
    const flag = await run(['echo', '--nope'], commands);
    assert.equal(flag.code, 1);
    assert.match(
      flag.err,
      /^error: Unknown option '--nope'\nSee 'kubectl gantry echo --help' for usage\.\n$/,
    );
  });

  it('prints usage with the kubectl prefix: exit 0 when asked for, 1 without a command', async () => {
    const { commands, seen } = recorder();
    const asked = await run(['--help'], commands);
    assert.equal(asked.code, 0);
    assert.match(asked.out, /^Usage:\n {2}kubectl gantry COMMAND \[flags\]$/m);
    assert.match(asked.out, /^ {2}echo {2}Echo$/m);
    assert.equal((await run([], commands)).code, 1);
    const one = await run(['echo', '-h'], commands);
    assert.equal(one.code, 0);
    assert.match(one.out, /^ {2}kubectl gantry echo WORDS$/m);
    assert.equal(seen.length, 0, 'help ran the command');
  });

  it('rejects an output format kubectl does not know', async () => {
    const { commands } = recorder();
    const r = await run(['echo', '-o', 'xml'], commands);
    assert.equal(r.code, 1);
    assert.match(r.err, /unable to match a printer suitable for the output format "xml"/);
  });
});

describe('kubectl gantry output', () => {
  it("shows ages as kubectl's AGE column does", () => {
    const now = Date.parse('2026-01-10T00:00:00Z');
    const ago = (s: number) => new Date(now - s * 1000).toISOString();
    const cases: [number, string][] = [
      [0, '0s'],
      [119, '119s'],
      [125, '2m5s'],
      [600, '10m'],
      [3 * 3600 + 60, '3h1m'],
      [10 * 3600, '10h'],
      [50 * 3600, '2d2h'],
      [10 * 86400, '10d'],
    ];
    for (const [s, want] of cases) assert.equal(age(ago(s), now), want, `${s}s`);
    assert.equal(age(undefined, now), '<unknown>');
  });

  it('aligns columns three spaces apart, without trailing blanks', () => {
    assert.equal(
      table(
        ['NAME', 'STATUS'],
        [
          ['a', 'Up 5s'],
          ['longer', ''],
        ],
      ),
      'NAME     STATUS\na        Up 5s\nlonger\n',
    );
  });
});

describe('run', () => {
  it('names a Container after its image, as kubectl run does', () => {
    assert.equal(nameFromImage('127.0.0.1:5000/gantry/web:1'), 'web');
    assert.equal(nameFromImage('docker.io/library/busybox@sha256:' + 'a'.repeat(64)), 'busybox');
    assert.equal(nameFromImage('registry.example/My_App:2'), 'my-app');
    assert.equal(nameFromImage('registry.example/___:2'), 'container');
  });

  it('refuses a port or a replica count it cannot read, before any request', async () => {
    const errors: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => errors.push(s) > 0) as typeof process.stderr.write;
    try {
      assert.equal(await main(['run', 'web:1', '-p', '70000', '--kubeconfig', '/nonexistent'], commands), 1);
      assert.equal(
        await main(['run', 'web:1', '--replicas', 'two', '--kubeconfig', '/nonexistent'], commands),
        1,
      );
    } finally {
      process.stderr.write = write;
    }
    assert.match(errors[0]!, /^error: invalid port "70000": "70000" is not a port: ports are 1-65535; give/);
    assert.match(errors[1]!, /^error: --replicas must be a whole number, not "two"/);
  });
});

describe('run -p', () => {
  it("reads docker run's [HOST_IP:][HOST_PORT:]PORT[/PROTO]; a bare PORT is only exposed", () => {
    assert.deepEqual(parsePublish('8080'), { containerPort: 8080, protocol: 'TCP' });
    assert.deepEqual(parsePublish('53/udp'), { containerPort: 53, protocol: 'UDP' });
    assert.deepEqual(parsePublish('80:8080'), { containerPort: 8080, protocol: 'TCP', hostPort: 80 });
    assert.deepEqual(parsePublish('5353:53/UDP'), { containerPort: 53, protocol: 'UDP', hostPort: 5353 });
    assert.deepEqual(parsePublish('192.0.2.10:80:8080/tcp'), {
      containerPort: 8080,
      protocol: 'TCP',
      hostPort: 80,
      hostIP: '192.0.2.10',
    });
    assert.deepEqual(parsePublish('[2001:db8::1]:80:8080'), {
      containerPort: 8080,
      protocol: 'TCP',
      hostPort: 80,
      hostIP: '2001:db8::1',
    });
  });

  it('says what is wrong with a value it cannot read', () => {
    const form = '; give \\[HOST_IP:\\]\\[HOST_PORT:\\]PORT\\[/udp\\]';
    const cases: [string, string][] = [
      ['http', '"http" is not a port: ports are 1-65535'],
      ['0', '"0" is not a port: ports are 1-65535'],
      ['80:70000', '"70000" is not a port: ports are 1-65535'],
      ['8080:', '"" is not a port: ports are 1-65535'],
      ['80/sctp', 'the protocol is tcp or udp'],
      ['host-1:80:8080', '"host-1" is not an IP address'],
      ['192.0.2.10::8080', 'a host IP needs a host port \\(Gantry does not pick one\\)'],
      ['[2001:db8::1]:8080', 'a host IP needs a host port'],
      ['2001:db8::1:80:8080', 'too many ":" \\(an IPv6 address goes in brackets'],
    ];
    for (const [value, why] of cases) {
      assert.throws(
        () => parsePublish(value),
        { message: new RegExp(`^invalid port "${value.replace(/[[\]]/g, '\\$&')}": ${why}.*${form}`, 's') },
        value,
      );
    }
  });

  it('documents the form in its usage, which completion still reads as IMAGE', () => {
    assert.match(runCommand.usage, /\[-p \[HOST_IP:\]\[HOST_PORT:\]PORT\[\/udp\]\]\.\.\./);
    assert.deepEqual(usageArguments(runCommand.usage), ['IMAGE']);
  });

  it('ps -o wide shows published ports as docker ps does', () => {
    const c = {
      spec: {
        ports: [
          { containerPort: 80, protocol: 'TCP', hostPort: 8080 },
          { containerPort: 53, protocol: 'UDP', hostPort: 53, hostIP: '192.0.2.10' },
          { containerPort: 443, protocol: 'TCP', hostPort: 8443, hostIP: '2001:db8::1' },
          { containerPort: 9090, protocol: 'TCP' },
        ],
      },
    } as Container;
    assert.equal(
      portsColumn(c),
      '8080->80/tcp, 192.0.2.10:53->53/udp, [2001:db8::1]:8443->443/tcp, 9090/tcp',
    );
    assert.equal(portsColumn({ spec: {} } as Container), '<none>');
  });
});

describe('images', () => {
  it('shows sizes as docker images does, in powers of 1000', () => {
    assert.equal(humanSize(undefined), '<unknown>');
    assert.equal(humanSize(512), '512B');
    assert.equal(humanSize(812_345), '812kB');
    assert.equal(humanSize(34_512_345), '34.5MB');
    assert.equal(humanSize(1_234_000_000), '1.23GB');
  });
});
