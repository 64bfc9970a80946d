// `kubectl gantry` as one archive, for krew and for anyone without npm: the plugin bundled into one
// JavaScript file (esbuild), a `kubectl-gantry` launcher that runs it with the node on the PATH, a
// `kubectl_complete-gantry` launcher for kubectl's plugin completion, Gantry's LICENSE and the
// licenses of what the bundle holds. The archive is byte-for-byte reproducible (sorted entries,
// fixed times and owners, gzip without a timestamp), so its sha256 names its content. `.krew.yaml`
// at the repository root is the krew manifest template (krew-release-bot's), rendered here for a
// local install.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const archiveName = 'kubectl-gantry.tar.gz';
const bundleName = 'kubectl-gantry.mjs';
const minNode = 20;

/** A launcher found on the PATH (or through krew's link to it) that runs the bundle beside it. */
function launcher(what: string, args: string): string {
  return `#!/bin/sh
# ${what}: the plugin is ${bundleName} beside this file, run by the node
# (${minNode} or newer) on the PATH. krew links this file into its bin directory: follow the link.
self=$0
while [ -L "$self" ]; do
  link=$(readlink "$self")
  case $link in /*) self=$link ;; *) self=$(dirname "$self")/$link ;; esac
done
if ! command -v node >/dev/null 2>&1; then
  echo "error: kubectl gantry needs Node.js ${minNode} or newer on the PATH" >&2
  exit 1
fi
exec node "$(dirname "$self")/${bundleName}" ${args}
`;
}

/** The licenses of the packages the bundle holds, one after another. */
function thirdPartyLicenses(inputs: string[]): string {
  const dirs = new Set<string>();
  for (const input of inputs) {
    const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m) dirs.add(m[1]!);
  }
  const parts = [...dirs].sort().map((dir) => {
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, dir, 'package.json'), 'utf8')) as {
      name: string;
      version: string;
      license?: string;
    };
    const file = fs.readdirSync(path.join(repoRoot, dir)).find((f) => /^(licen[cs]e|copying)/i.test(f));
    const text = file ? fs.readFileSync(path.join(repoRoot, dir, file), 'utf8').trim() : '';
    return `${pkg.name}@${pkg.version} (${pkg.license ?? 'see its package'})\n\n${text}\n`;
  });
  return `kubectl gantry bundles these packages:\n\n${parts.join(`\n${'-'.repeat(72)}\n\n`)}`;
}

export interface Packed {
  archive: string;
  sha256: string;
}

/** Builds `outDir/kubectl-gantry.tar.gz` from the working tree; its sha256 with it. */
export async function packPlugin(outDir: string): Promise<Packed> {
  const stage = path.join(outDir, 'kubectl-gantry');
  fs.rmSync(stage, { recursive: true, force: true });
  fs.mkdirSync(stage, { recursive: true });
  const result = await build({
    entryPoints: [path.join(repoRoot, 'src/cmd/kubectl-gantry.ts')],
    outfile: path.join(stage, bundleName),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: `node${minNode}`,
    minify: true,
    legalComments: 'none', // the licenses are in THIRD-PARTY-LICENSES
    metafile: true,
    logLevel: 'error',
    // The bundled CommonJS packages require node's modules; an older node is told what it needs.
    banner: {
      js:
        `if(+process.versions.node.split('.')[0]<${minNode}){console.error('error: kubectl gantry needs ` +
        `Node.js ${minNode} or newer, not '+process.version);process.exit(1)}` +
        `import{createRequire as __gantryRequire}from'node:module';const require=__gantryRequire(import.meta.url);`,
    },
  });
  const files: Record<string, [string, number]> = {
    'kubectl-gantry': [launcher('kubectl gantry', '"$@"'), 0o755],
    'kubectl_complete-gantry': [
      launcher("kubectl gantry's shell completion, which kubectl 1.26 and newer run", '__complete "$@"'),
      0o755,
    ],
    LICENSE: [fs.readFileSync(path.join(repoRoot, 'LICENSE'), 'utf8'), 0o644],
    'THIRD-PARTY-LICENSES': [thirdPartyLicenses(Object.keys(result.metafile.inputs)), 0o644],
  };
  for (const [name, [content, mode]] of Object.entries(files)) {
    fs.writeFileSync(path.join(stage, name), content, { mode });
    fs.chmodSync(path.join(stage, name), mode);
  }
  fs.chmodSync(path.join(stage, bundleName), 0o644);
  const archive = path.join(outDir, archiveName);
  const tar = execFileSync(
    'tar',
    [
      '--sort=name',
      '--mtime=@0',
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      '--format=ustar',
      '-C',
      stage,
      '-cf',
      '-',
      ...fs.readdirSync(stage).sort(),
    ],
    { maxBuffer: 256 * 1024 * 1024 },
  );
  fs.writeFileSync(
    archive,
    execFileSync('gzip', ['-9', '-n', '-c'], { input: tar, maxBuffer: 256 * 1024 * 1024 }),
  );
  const sha256 = createHash('sha256').update(fs.readFileSync(archive)).digest('hex');
  return { archive, sha256 };
}

/**
 * `.krew.yaml` as krew-release-bot renders it for a release tag: `{{ .TagName }}`, and
 * `{{addURIAndSha "URL" .TagName }}` as the platform's uri and sha256 (the archive's).
 */
export function renderKrewManifest(template: string, tag: string, sha256: string): string {
  const withTag = (s: string) => s.replace(/\{\{\s*\.TagName\s*\}\}/g, tag);
  return withTag(
    template.replace(
      /^( *)\{\{\s*addURIAndSha\s+"([^"]+)"\s+\.TagName\s*\}\}$/gm,
      (_, indent: string, uri: string) => `${indent}uri: ${withTag(uri)}\n${indent}sha256: ${sha256}`,
    ),
  );
}

/** The template at the repository root. */
export function krewTemplate(): string {
  return fs.readFileSync(path.join(repoRoot, '.krew.yaml'), 'utf8');
}
