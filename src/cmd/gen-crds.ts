// `npm run gen:crds`: writes crds/<plural>.gantry.dev.yaml from the zod schemas in src/api/v1alpha1,
// and removes CRD files of kinds that no longer exist; then the Helm chart's copy of them
// (charts/gantry/templates/crds/, see src/install/crds.ts).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderCrds } from '../api/v1alpha1/crd.js';
import { writeChartCrds } from '../install/crds.js';

const dir = fileURLToPath(new URL('../../crds/', import.meta.url));
fs.mkdirSync(dir, { recursive: true });

const files = renderCrds();
for (const [name, content] of files) {
  const file = path.join(dir, name);
  const changed = !fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== content;
  if (changed) fs.writeFileSync(file, content);
  console.log(`${changed ? 'wrote    ' : 'unchanged'} crds/${name}`);
}
for (const name of fs.readdirSync(dir)) {
  if (name.endsWith('.gantry.dev.yaml') && !files.has(name)) {
    fs.rmSync(path.join(dir, name));
    console.log(`removed   crds/${name}`);
  }
}
writeChartCrds();
