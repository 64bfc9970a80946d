// `npm run plugin:pack`: kubectl gantry as one archive (dist/plugin/kubectl-gantry.tar.gz: the
// bundled plugin, its launchers, the licenses) and its sha256, as krew installs it; beside it
// gantry.yaml, the krew manifest `.krew.yaml` rendered for this version, so that
//   kubectl krew install --manifest=dist/plugin/gantry.yaml --archive=dist/plugin/kubectl-gantry.tar.gz
// installs what a release would publish.
import fs from 'node:fs';
import path from 'node:path';
import { krewTemplate, packPlugin, renderKrewManifest, repoRoot } from '../install/pluginpack.js';

const out = path.join(repoRoot, 'dist', 'plugin');
fs.mkdirSync(out, { recursive: true });
const { archive, sha256 } = await packPlugin(out);
const { version } = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as {
  version: string;
};
const manifest = path.join(out, 'gantry.yaml');
fs.writeFileSync(manifest, renderKrewManifest(krewTemplate(), `v${version}`, sha256));
console.log(`${sha256}  ${path.relative(process.cwd(), archive)}`);
console.log(`krew manifest for v${version}: ${path.relative(process.cwd(), manifest)}`);
