// kubectl gantry installed as krew installs plugins: `npm run plugin:pack`'s archive and the
// `.krew.yaml` template rendered for it, installed by the real krew (built from its Go module)
// into a KREW_ROOT of its own, then run through the cluster's kubectl: --help, and kubectl's
// plugin completion through the kubectl_complete-gantry the manifest's caveats tell users to add.
// Needs no cluster: the plugin's help and command names ask nothing of the apiserver.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  krewTemplate,
  packPlugin,
  renderKrewManifest,
  type Packed,
} from '../../../src/install/pluginpack.js';
import { ensureKrew } from '../../../src/localcluster/binaries.js';
import { cacheDir } from '../../../src/localcluster/versions.js';

const execFileP = promisify(execFile);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-krew-'));
const krewRoot = path.join(work, 'krew');
const bin = path.join(work, 'bin');
const tag = 'v0.1.0';
let packed: Packed;
let manifest: string;

/** A command with krew's bin directory, kubectl-krew and node on the PATH, and no kubeconfig. */
async function sh(file: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = {
    ...process.env,
    KREW_ROOT: krewRoot,
    KUBECONFIG: path.join(work, 'no-kubeconfig'),
    PATH: [
      path.join(krewRoot, 'bin'),
      bin,
      path.join(cacheDir, 'bin'),
      path.dirname(process.execPath),
      '/usr/bin',
      '/bin',
    ].join(':'),
  };
  try {
    const { stdout, stderr } = await execFileP(file, args, { env, timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof err.code === 'number' ? err.code : 1,
      stdout: err.stdout ?? '',
      stderr: err.stderr ?? '',
    };
  }
}

describe('kubectl gantry through krew', { timeout: 600_000 }, () => {
  before(async () => {
    const krew = await ensureKrew((line) => console.log(line));
    fs.mkdirSync(bin);
    fs.symlinkSync(krew, path.join(bin, 'kubectl-krew'));
    packed = await packPlugin(path.join(work, 'pack'));
    manifest = path.join(work, 'gantry.yaml');
    fs.writeFileSync(manifest, renderKrewManifest(krewTemplate(), tag, packed.sha256));
  });

  after(() => fs.rmSync(work, { recursive: true, force: true }));

  it('packs the same archive twice: its sha256 names its content', async () => {
    const again = await packPlugin(path.join(work, 'pack-again'));
    assert.equal(again.sha256, packed.sha256);
    assert.match(packed.sha256, /^[0-9a-f]{64}$/);
  });

  it('renders the template as krew-release-bot does', () => {
    const text = fs.readFileSync(manifest, 'utf8');
    assert.doesNotMatch(text, /\{\{/);
    assert.match(text, /^ {2}version: v0\.1\.0$/m);
    assert.match(
      text,
      new RegExp(`^ {6}uri: https://\\S+/releases/download/${tag}/kubectl-gantry\\.tar\\.gz$`, 'm'),
    );
    assert.match(text, new RegExp(`^ {6}sha256: ${packed.sha256}$`, 'm'));
  });

  it('krew installs it from the manifest and the archive, and kubectl runs it', async () => {
    const install = await sh('kubectl', [
      'krew',
      'install',
      `--manifest=${manifest}`,
      `--archive=${packed.archive}`,
    ]);
    assert.equal(install.code, 0, install.stderr);
    assert.match(install.stderr + install.stdout, /Installed plugin: gantry/);
    assert.match(install.stderr + install.stdout, /Needs Node\.js 20 or newer on the PATH/);
    const list = await sh('kubectl', ['plugin', 'list', '--name-only']);
    assert.match(list.stdout, /^kubectl-gantry$/m);
    const help = await sh('kubectl', ['gantry', '--help']);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^Usage:\n {2}kubectl gantry COMMAND \[flags\]$/m);
    assert.match(help.stdout, /^ {2}drain {2,}Move every container off a host$/m);
    const drainHelp = await sh('kubectl', ['gantry', 'drain', '--help']);
    assert.match(drainHelp.stdout, /kubectl gantry drain HOST/);
  });

  it("kubectl completes `kubectl gantry` once the caveats' kubectl_complete-gantry is on the PATH", async () => {
    const before = await sh('kubectl', ['__complete', 'gantry', 'dr']);
    assert.doesNotMatch(before.stdout, /^drain/m, 'completed before the completer was added');
    // The caveats' own commands, as a user pastes them.
    const caveats = /caveats: \|\n((?: {4}.*\n|\n)*)/.exec(fs.readFileSync(manifest, 'utf8'))![1]!;
    const commands = caveats
      .split('\n')
      .filter((l) => l.startsWith('      '))
      .map((l) => l.trim());
    assert.equal(commands.length, 2, caveats);
    const added = await sh('sh', ['-c', commands.join('\n')]);
    assert.equal(added.code, 0, added.stderr);
    const r = await sh('kubectl', ['__complete', 'gantry', 'dr']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'drain\tMove every container off a host\n:4\n');
    const shells = await sh('kubectl', ['__complete', 'gantry', 'completion', '']);
    assert.equal(shells.stdout, 'bash\nzsh\n:4\n');
  });

  it('krew removes it', async () => {
    // uninstall wants a plugin index (krew-index, a clone from GitHub that `krew update` makes and
    // --manifest installs skip): an empty local repository stands in for it.
    await execFileP('git', ['init', '-q', path.join(krewRoot, 'index', 'default')]);
    const r = await sh('kubectl', ['krew', 'uninstall', 'gantry']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(fs.existsSync(path.join(krewRoot, 'bin', 'kubectl-gantry')), false);
  });
});
