// npm run image:build [-- --no-push]: builds the repository's Dockerfile with buildah (the bases
// assembled from this machine, src/localcluster/image.ts) and pushes it to the local registry.
import { parseArgs } from 'node:util';
import { buildGantryImage, ensureGantryImage } from '../localcluster/image.js';
import { PrerequisiteError } from '../localcluster/prerequisites.js';

const { values } = parseArgs({ options: { 'no-push': { type: 'boolean', default: false } } });

async function main(): Promise<void> {
  const started = Date.now();
  const took = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
  if (values['no-push']) {
    const image = await buildGantryImage();
    console.log(`\nbuilt in ${took()}, not pushed\n  layout: ${image.layout}\n  digest: ${image.digest}`);
    return;
  }
  const image = await ensureGantryImage();
  console.log(`\nbuilt and pushed in ${took()}\n  image:  ${image.ref}\n  digest: ${image.digest}`);
}

main().catch((e: unknown) => {
  console.error(e instanceof PrerequisiteError ? `error: ${e.message}` : e);
  process.exit(1);
});
