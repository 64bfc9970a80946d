// What the image build's parts share: the log buildah and skopeo write to, and the content keys
// the cached OCI layouts are named by (the bases' in imagebases.ts, the Gantry image's in
// dockerfile.ts).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { cacheDir } from './versions.js';

/** buildah's and skopeo's output; a failure names it. */
export const imageBuildLog = path.join(cacheDir, 'logs', 'image-build.log');

/** Changes every key: bump it when a recipe changes in a way its inputs do not show. */
export const recipeVersion = 1;

export function sha256(data: string | Buffer): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

export function fileDigest(file: string): string {
  return sha256(fs.readFileSync(file));
}
