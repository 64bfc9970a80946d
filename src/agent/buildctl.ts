// BuildKit's client as pure functions: the buildctl command line for a Build, and what its plain
// progress output says about a failure (the step, the Dockerfile line, the last lines of output).
import path from 'node:path';
import { parseImageReference, type BuildSpec } from '../api/v1alpha1/index.js';

/** Where a run's files are: the context, the secrets' files, the metadata buildctl writes. */
export interface BuildFiles {
  context: string;
  /** Secret id -> file holding its value. */
  secrets: Record<string, string>;
  metadata: string;
}

/** The tag the registry layer cache of a repository goes to (exported and imported by every build). */
export function cacheRef(image: string): string {
  const ref = parseImageReference(image);
  return `${ref.registry}/${ref.path}:buildcache`;
}

/** `buildctl --addr <socket> build ...` for the Build's spec, pushing to spec.image. */
export function buildctlArgs(address: string, spec: BuildSpec, files: BuildFiles): string[] {
  const dockerfileDir = path.join(files.context, path.dirname(spec.dockerfile));
  const cache = cacheRef(spec.image);
  return [
    '--addr',
    address,
    'build',
    '--progress=plain',
    '--frontend=dockerfile.v0',
    `--local=context=${files.context}`,
    `--local=dockerfile=${dockerfileDir}`,
    `--opt=filename=${path.basename(spec.dockerfile)}`,
    ...Object.entries(spec.buildArgs ?? {})
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `--opt=build-arg:${k}=${v}`),
    ...(spec.target ? [`--opt=target=${spec.target}`] : []),
    ...(spec.secrets ?? []).map((s) => `--secret=id=${s.id},src=${files.secrets[s.id]}`),
    `--output=type=image,name=${spec.image},push=true`,
    `--export-cache=type=registry,ref=${cache},mode=max`,
    `--import-cache=type=registry,ref=${cache}`,
    `--metadata-file=${files.metadata}`,
  ];
}

/** The pushed manifest's digest from buildctl's metadata file, if it has one. */
export function metadataDigest(metadata: string): string | undefined {
  try {
    const digest = (JSON.parse(metadata) as Record<string, unknown>)['containerimage.digest'];
    return typeof digest === 'string' && /^sha256:[0-9a-f]{64}$/.test(digest) ? digest : undefined;
  } catch {
    return undefined;
  }
}

export interface BuildFailure {
  /** The failing step as BuildKit names it, with its Dockerfile line: `[2/3] RUN make (Dockerfile:4)`. */
  step?: string;
  /** The error in one line. */
  message: string;
  /** The last lines of the failing step's output (or of the whole output). */
  logTail: string;
}

const tailLines = 20;

/**
 * Reads a failed build's plain progress output: vertices print as `#<n> <name>` then `#<n> <line>`,
 * the failing one `#<n> ERROR: ...`; the Dockerfile frontend then names the line (`Dockerfile:4`,
 * `>>> RUN make`) and buildctl ends with `error: failed to solve: ...`.
 */
export function parseFailure(output: string): BuildFailure {
  const lines = output.split('\n').map((l) => l.trimEnd());
  const errorLine = [...lines].reverse().find((l) => /^error: /.test(l));
  const message = (errorLine ?? lines.filter(Boolean).at(-1) ?? 'buildctl failed')
    .replace(/^error: /, '')
    .replace(/^failed to solve: /, '');
  // The vertex whose error is the build's (a missing registry cache also prints an ERROR, and goes on).
  const errors = lines
    .map((l) => /^#(\d+) ERROR: (.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null);
  const failed = (errors.find((m) => m[2] === message) ?? errors.at(-1))?.[1];
  let step: string | undefined;
  let stepLines = lines;
  if (failed !== undefined) {
    const prefix = `#${failed} `;
    stepLines = lines.filter((l) => l.startsWith(prefix)).map((l) => l.slice(prefix.length));
    step = stepLines[0];
  }
  const location = lines.find((l) => /^[^ ]+:\d+$/.test(l) && !l.startsWith('#'));
  if (step && location) step = `${step} (${location})`;
  const tail = stepLines
    .filter((l) => !/^DONE |^CACHED$|^\[internal\]/.test(l))
    .slice(-tailLines)
    .join('\n')
    .trimEnd();
  return { ...(step && { step }), message, logTail: tail };
}
