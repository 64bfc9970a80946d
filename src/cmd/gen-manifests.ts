// `npm run gen:manifests`: writes manifests/*.yaml, the chart rendered with its defaults, after
// bringing the chart's CRDs up to date with the zod schemas (what `npm run gen:crds` does too).
import fs from 'node:fs';
import path from 'node:path';
import { writeChartCrds } from '../install/crds.js';
import { manifestsDir, renderManifests } from '../install/manifests.js';
import { cacheDir } from '../localcluster/versions.js';

// The helm the local cluster builds, unless $HELM names another.
process.env.PATH = `${path.join(cacheDir, 'bin')}:${process.env.PATH}`;

writeChartCrds();
fs.mkdirSync(manifestsDir, { recursive: true });
for (const [name, content] of await renderManifests()) {
  const file = path.join(manifestsDir, name);
  const changed = !fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== content;
  if (changed) fs.writeFileSync(file, content);
  console.log(`${changed ? 'wrote    ' : 'unchanged'} manifests/${name}`);
}
