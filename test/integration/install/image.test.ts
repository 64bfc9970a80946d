// The Dockerfile, checked as far as a machine without a Docker engine can: its build stage is
// replayed in a scratch context made the way Docker makes one (.dockerignore applied, only what
// COPY names), `npm run build` runs there, and the files the run stage and the chart start exist
// and load with the runtime dependencies alone.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { builtinModules } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { renderChart } from '../../../src/install/helm.js';
import { find, parseObjects, repoRoot } from './support.js';

const run = promisify(execFile);
const context = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-image-'));

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  from: string;
  name?: string;
  instructions: Instruction[];
}

/** Dockerfile -> ARGs before the first FROM, and stages (comments dropped, continuations joined). */
function parseDockerfile(text: string): { args: Record<string, string>; stages: Stage[] } {
  const lines = text
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, op = '', rest = ''] = /^(\S+)\s+(.*)$/.exec(line) ?? [];
    const upper = op.toUpperCase();
    if (upper === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest)!;
      stages.push({ from: m[1]!, name: m[2], instructions: [] });
    } else if (stages.length === 0) {
      if (upper === 'ARG') {
        const [k, v = ''] = rest.split('=');
        args[k!] = v;
      }
    } else {
      stages.at(-1)!.instructions.push({ op: upper, args: rest });
    }
  }
  return { args, stages };
}

/** .dockerignore patterns (Docker's: anchored at the context root, `*` within one path element). */
function ignoredBy(patterns: string[]): (relative: string) => boolean {
  const regexes = patterns.map((p) => {
    const body = p
      .replace(/\/+$/, '')
      .split('/')
      .map((part) =>
        part === '**'
          ? '.*'
          : part
              .replace(/[.+^${}()|[\]\\]/g, '\\$&')
              .replace(/\*/g, '[^/]*')
              .replace(/\?/g, '[^/]'),
      )
      .join('/');
    // A directory's pattern excludes what is under it too.
    return new RegExp(`^${body}(/.*)?$`);
  });
  return (relative) => regexes.some((r) => r.test(relative));
}

const dockerfile = parseDockerfile(fs.readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8'));
const dockerignore = fs
  .readFileSync(path.join(repoRoot, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));
const ignored = ignoredBy(dockerignore);
const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as {
  engines: { node: string };
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
  scripts: Record<string, string>;
};
const [build, runtime] = dockerfile.stages;

/** Sources of the COPY instructions without --from (the build context). */
function contextCopies(stage: Stage): { sources: string[]; dest: string }[] {
  return stage.instructions
    .filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))
    .map((i) => {
      const parts = i.args.split(/\s+/);
      return { sources: parts.slice(0, -1), dest: parts.at(-1)! };
    });
}

/** Every bare import reachable from `entry` through relative imports. */
function bareImports(entry: string): Set<string> {
  const seen = new Set<string>();
  const bare = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(
      /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g,
    )) {
      const spec = (m[1] ?? m[2])!;
      if (spec.startsWith('.')) visit(path.resolve(path.dirname(file), spec));
      else bare.add(spec);
    }
  };
  visit(entry);
  return bare;
}

describe('container image (Dockerfile)', () => {
  before(async () => {
    // The context Docker would send: what the build stage COPYs, minus .dockerignore.
    for (const { sources } of contextCopies(build!)) {
      for (const source of sources) {
        assert.ok(!ignored(source), `.dockerignore excludes ${source}, which the Dockerfile copies`);
        fs.cpSync(path.join(repoRoot, source), path.join(context, source), {
          recursive: true,
          filter: (src) => !ignored(path.relative(repoRoot, src)),
        });
      }
    }
    // `npm ci` stands in as a link to the installed dependencies (no registry on CI machines).
    fs.symlinkSync(path.join(repoRoot, 'node_modules'), path.join(context, 'node_modules'));
  });

  after(() => fs.rmSync(context, { recursive: true, force: true }));

  it('builds on the Node.js the project supports, in two stages, and runs as a numeric non-root user', async () => {
    assert.equal(dockerfile.stages.length, 2);
    const major = /(\d+)/.exec(pkg.engines.node)?.[1];
    assert.equal(dockerfile.args.NODE_VERSION, major, 'NODE_VERSION differs from package.json engines');
    assert.match(build!.from, /^docker\.io\/library\/node:\$\{NODE_VERSION\}-bookworm-slim$/);
    assert.equal(build!.name, 'build');
    assert.match(runtime!.from, /^gcr\.io\/distroless\/nodejs\$\{NODE_VERSION\}-debian12:nonroot$/);
    const user = runtime!.instructions.filter((i) => i.op === 'USER').at(-1)?.args;
    assert.match(user ?? '', /^[1-9]\d*:[1-9]\d*$/, 'the image must run as a numeric non-root user');
    // The chart's controller runs as that user; the agent overrides it with root.
    const objects = await parseObjects(
      await renderChart({
        showOnly: ['templates/controller-deployment.yaml', 'templates/agent-daemonset.yaml'],
      }),
    );
    const podUser = (kind: string) => {
      type Pod = {
        securityContext: { runAsUser?: number };
        containers: { securityContext: { runAsUser?: number } }[];
      };
      const spec = (find(objects, kind).spec as { template: { spec: Pod } }).template.spec;
      return spec.containers[0]!.securityContext.runAsUser ?? spec.securityContext.runAsUser;
    };
    assert.equal(String(podUser('Deployment')), user!.split(':')[0]);
    assert.equal(podUser('DaemonSet'), 0);
    // The build context leaves out what the image does not need.
    for (const p of ['node_modules', 'dist', '.git', 'test', 'charts']) {
      assert.ok(ignored(p), `.dockerignore should exclude ${p}`);
    }
  });

  it('runs `npm run build` in the replayed build stage and produces what the run stage and the chart start', async () => {
    const runs = build!.instructions.filter((i) => i.op === 'RUN').map((i) => i.args);
    assert.ok(runs.includes('npm ci --no-audit --no-fund'));
    const buildRun = runs.find((r) => r.startsWith('npm run build'));
    assert.equal(buildRun, 'npm run build && npm prune --omit=dev');
    await run('npm', ['run', 'build'], { cwd: context, timeout: 300_000 });
    // What the run stage copies from the build stage.
    for (const i of runtime!.instructions.filter(
      (x) => x.op === 'COPY' && x.args.startsWith('--from=build'),
    )) {
      const source = i.args.split(/\s+/)[1]!.replace(/^\/src\//, '');
      assert.ok(fs.existsSync(path.join(context, source)), `the build stage has no ${source}`);
    }
    const cmd = JSON.parse(runtime!.instructions.find((i) => i.op === 'CMD')!.args) as string[];
    const entrypoint = JSON.parse(runtime!.instructions.find((i) => i.op === 'ENTRYPOINT')!.args) as string[];
    assert.equal(entrypoint[0], '/nodejs/bin/node');
    assert.deepEqual(cmd, ['dist/cmd/controller.js']);
    // The programs the chart starts, and the CRI proto the agent loads next to its module.
    const objects = await parseObjects(
      await renderChart({
        showOnly: ['templates/controller-deployment.yaml', 'templates/agent-daemonset.yaml'],
      }),
    );
    for (const kind of ['Deployment', 'DaemonSet']) {
      const args = (find(objects, kind).spec as { template: { spec: { containers: { args: string[] }[] } } })
        .template.spec.containers[0]!.args;
      assert.ok(
        fs.existsSync(path.join(context, args[0]!)),
        `${kind} starts ${args[0]}, which the build lacks`,
      );
    }
    assert.ok(fs.existsSync(path.join(context, 'dist/cri/runtime.proto')));
  });

  it('needs only runtime dependencies (npm prune --omit=dev) and starts', async () => {
    const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
    for (const entry of ['dist/cmd/controller.js', 'dist/cmd/agent.js']) {
      const packages = [...bareImports(path.join(context, entry))]
        .filter((s) => !builtins.has(s))
        .map((s) => (s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]!));
      assert.ok(packages.includes('@kubernetes/client-node'), `found no imports in ${entry}`);
      for (const name of new Set(packages)) {
        assert.ok(name in pkg.dependencies, `${entry} imports ${name}, which is not a runtime dependency`);
      }
    }
    const help = await run(process.execPath, ['--enable-source-maps', 'dist/cmd/controller.js', '--help'], {
      cwd: context,
    });
    assert.match(help.stdout, /^Usage: gantry-controller/);
    // The agent loads and checks its flags (exit 2 on a bad one) before touching anything.
    await assert.rejects(
      run(process.execPath, ['dist/cmd/agent.js', '--no-such-flag'], { cwd: context }),
      (e: { code?: number; stderr?: string }) => e.code === 2 && /^gantry-agent: /.test(e.stderr ?? ''),
    );
  });
});
