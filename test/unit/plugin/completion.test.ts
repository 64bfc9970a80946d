// Shell completion of kubectl gantry: what it offers for each word, in cobra's __complete format
// that kubectl reads from kubectl_complete-gantry, and the bash script reading that format.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { GlobalFlags } from '../../../src/plugin/client.js';
import { commands } from '../../../src/plugin/commands.js';
import {
  complete,
  completionScripts,
  directive,
  runCompletion,
  usageArguments,
  type Sources,
} from '../../../src/plugin/completion.js';

/** Names as a cluster would list them; containers per namespace, recording the flags they were asked with. */
function fakeSources(): Sources & { asked: GlobalFlags[] } {
  const asked: GlobalFlags[] = [];
  const byNamespace: Record<string, string[]> = { default: ['web', 'worker', 'db'], team: ['talker'] };
  return {
    asked,
    containers: async (flags) => (asked.push(flags), byNamespace[flags.namespace ?? 'default'] ?? []),
    hosts: async () => ['host-2', 'host-1'],
    namespaces: async () => ['default', 'team', 'kube-system'],
    contexts: async () => ['admin', 'team'],
  };
}

const values = async (words: string[], sources: Sources = fakeSources()) =>
  (await complete(words, commands, sources)).candidates.map((c) => c.split('\t')[0]);

describe('kubectl gantry completion', () => {
  it('offers the commands, with their summaries, and no files', async () => {
    const all = await complete([''], commands, fakeSources());
    assert.equal(all.directive, directive.noFileComp);
    assert.ok(all.candidates.includes('drain\tMove every container off a host'), all.candidates.join('\n'));
    for (const c of commands)
      assert.ok(
        all.candidates.some((l) => l.startsWith(`${c.name}\t`)),
        c.name,
      );
    assert.deepEqual(await values(['-n', 'team', 'u']), ['uncordon']);
    assert.deepEqual(await values(['bogus', '']), []);
  });

  it("offers a command's flags and the global ones, long and short, not those already given", async () => {
    const flags = await values(['logs', '-']);
    for (const f of [
      '--follow',
      '-f',
      '--tail',
      '--previous',
      '--timestamps',
      '--namespace',
      '-n',
      '--context',
    ])
      assert.ok(flags.includes(f), `${f} in ${flags.join(' ')}`);
    assert.deepEqual(await values(['drain', 'host-1', '--t']), ['--timeout']);
    assert.ok(!(await values(['logs', '--tail', '3', '--'])).includes('--tail'));
    const described = await complete(['ps', '--na'], commands, fakeSources());
    assert.deepEqual(described.candidates, ['--namespace\tthe namespace']);
  });

  it('offers Container names of the namespace -n names (else the context decides) for commands taking NAME', async () => {
    const sources = fakeSources();
    assert.deepEqual(await values(['logs', ''], sources), ['db', 'web', 'worker']);
    assert.deepEqual(await values(['logs', 'w'], sources), ['web', 'worker']);
    assert.deepEqual(await values(['inspect', '-n', 'team', ''], sources), ['talker']);
    assert.deepEqual(await values(['--namespace=team', 'migrate', 't'], sources), ['talker']);
    assert.deepEqual(sources.asked.at(-1), { namespace: 'team' });
    // rm takes several: one already given is not offered again; logs takes one.
    assert.deepEqual(await values(['rm', 'web', ''], sources), ['db', 'worker']);
    assert.deepEqual(await values(['stop', '-t', '5', 'web', ''], sources), ['db', 'worker']);
    assert.deepEqual(await values(['start', 'w'], sources), ['web', 'worker']);
    assert.deepEqual(await values(['stop', '-t', ''], sources), [], 'seconds, not a name');
    assert.deepEqual(await values(['logs', 'web', ''], sources), []);
    // Nothing after `--` (a command to run in the container), nor for ps.
    assert.deepEqual(await values(['run', 'web:1', '--', ''], sources), []);
    assert.deepEqual(await values(['ps', ''], sources), []);
  });

  it('offers Host names for drain, uncordon and migrate --to', async () => {
    assert.deepEqual(await values(['drain', '']), ['host-1', 'host-2']);
    assert.deepEqual(await values(['uncordon', 'host-']), ['host-1', 'host-2']);
    assert.deepEqual(await values(['migrate', 'web', '--to', '']), ['host-1', 'host-2']);
    assert.deepEqual(await values(['migrate', 'web', '--to=host-2']), ['--to=host-2']);
  });

  it('offers the values of -n, --context, -o, --mode and the shells; files for --kubeconfig', async () => {
    assert.deepEqual(await values(['logs', '-n', 'k']), ['kube-system']);
    assert.deepEqual(await values(['--context', '']), ['admin', 'team']);
    assert.deepEqual(await values(['ps', '-o', '']), ['json', 'yaml', 'name', 'wide']);
    assert.deepEqual(await values(['migrate', 'web', '--mode', '']), ['Checkpoint', 'Restart']);
    assert.deepEqual(await values(['completion', '']), ['bash', 'zsh']);
    assert.deepEqual(await complete(['--kubeconfig', ''], commands, fakeSources()), {
      candidates: [],
      directive: directive.default,
    });
    assert.deepEqual(await values(['drain', 'h', '--timeout', '']), []);
  });

  it('offers nothing, and no error, when the cluster refuses or cannot be reached', async () => {
    const refusing: Sources = {
      ...fakeSources(),
      containers: () => Promise.reject(new Error('Forbidden')),
    };
    assert.deepEqual(await complete(['logs', ''], commands, refusing), {
      candidates: [],
      directive: directive.noFileComp,
    });
  });

  it("prints cobra's __complete format: one candidate a line, then :<directive>", async () => {
    let out = '';
    await runCompletion(['dr'], commands, (s) => void (out += s), fakeSources());
    assert.equal(out, 'drain\tMove every container off a host\n:4\n');
    out = '';
    await runCompletion([], commands, (s) => void (out += s), fakeSources());
    assert.match(out, /^run\t.*\n(.*\n)*:4\n$/);
  });

  it('reads the arguments of a usage line', () => {
    assert.deepEqual(usageArguments('NAME [-f] [--tail N] [--previous]'), ['NAME']);
    assert.deepEqual(usageArguments('NAME... [--wait]'), ['NAME...']);
    assert.deepEqual(usageArguments('[-i] [-t] NAME -- COMMAND [ARG...]'), ['NAME']);
    assert.deepEqual(
      usageArguments('IMAGE [--name NAME] [-p PORT]... [-e NAME=VALUE]... [-- COMMAND [ARG...]]'),
      ['IMAGE'],
    );
    assert.deepEqual(usageArguments('[NAME] [-o wide]'), ['NAME']);
    assert.deepEqual(usageArguments('bash|zsh'), ['bash|zsh']);
    assert.deepEqual(usageArguments('PATH -t IMAGE [-f DOCKERFILE] [--no-wait]'), ['PATH']);
  });

  it('the bash script passes the words typed and turns the answer into COMPREPLY, descriptions dropped', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-completion-'));
    try {
      // A kubectl-gantry that answers as the real one would and records what it was asked.
      fs.writeFileSync(
        path.join(dir, 'kubectl-gantry'),
        `#!/bin/sh\nprintf '%s\\n' "$*" > "${dir}/asked"\n` +
          `case "$3" in\n  w) printf 'web\\nworker\\n:4\\n' ;;\n  x) printf ':0\\n' ;;\n` +
          `  *) printf 'logs\\tPrint output\\nls\\n:4\\n' ;;\nesac\n`,
        { mode: 0o755 },
      );
      const script = path.join(dir, 'script.bash');
      fs.writeFileSync(script, completionScripts.bash!);
      const complete = (words: string[]) =>
        execFileSync(
          'bash',
          [
            '-c',
            `source "$0"; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); __kubectl_gantry_complete; ` +
              `printf '<%s>\\n' "\${COMPREPLY[@]}"; complete -p kubectl-gantry`,
            script,
            ...words,
          ],
          { encoding: 'utf8', env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } },
        );
      const first = complete(['kubectl-gantry', 'l']);
      assert.match(first, /^<logs>\n<ls>\ncomplete -F __kubectl_gantry_complete kubectl-gantry\n$/);
      assert.equal(fs.readFileSync(path.join(dir, 'asked'), 'utf8'), '__complete l\n');
      assert.match(complete(['kubectl-gantry', 'logs', 'w']), /^<web>\n<worker>\n/);
      assert.equal(fs.readFileSync(path.join(dir, 'asked'), 'utf8'), '__complete logs w\n');
      // A new word is passed as "".
      complete(['kubectl-gantry', 'logs', '']);
      assert.equal(fs.readFileSync(path.join(dir, 'asked'), 'utf8'), '__complete logs \n');
      assert.match(complete(['kubectl-gantry', '-n', 'x']), /^<>\n/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the zsh script passes the words typed and gives _describe value:description pairs', () => {
    const zsh = ['/usr/bin/zsh', '/bin/zsh'].find((f) => fs.existsSync(f));
    // npm test installs it with the local cluster's prerequisites (versions.ts).
    assert.ok(zsh, 'zsh is not installed, so the zsh script cannot be run: apt-get install -y zsh');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-completion-'));
    try {
      fs.writeFileSync(
        path.join(dir, 'kubectl-gantry'),
        `#!/bin/sh\nprintf '%s\\n' "$*" > "${dir}/asked"\n` +
          `printf 'logs\\tPrint output\\nls\\nx:y\\n:6\\n'\n`,
        { mode: 0o755 },
      );
      const script = path.join(dir, 'script.zsh');
      fs.writeFileSync(script, completionScripts.zsh!);
      // compsys's functions, standing in: what the script hands them is what is checked.
      const out = execFileSync(
        zsh!,
        [
          '-c',
          'compdef() { print -r -- "compdef $*"; }; _files() { print files; }; ' +
            '_describe() { local a; for a in "${(@P)4}"; do print -r -- "<$a>"; done; shift 4; print -r -- "${(q)@}"; }; ' +
            'source "$1"; words=(kubectl-gantry logs l); CURRENT=3; __kubectl_gantry_complete',
          'zsh',
          script,
        ],
        { encoding: 'utf8', env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } },
      );
      assert.equal(
        out,
        "compdef __kubectl_gantry_complete kubectl-gantry\n<logs:Print output>\n<ls>\n<x\\:y>\n-S ''\n",
      );
      assert.equal(fs.readFileSync(path.join(dir, 'asked'), 'utf8'), '__complete logs l\n');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
