// What an Image's build is made of, as pure functions: the inputs (spec.build with the ConfigMap's
// files copied in), their hash, the Build's name from it, the builder Host, and what the Build's
// state means for the Image's status. A Build is named <image>-<hash of its inputs>, so the
// apiserver refuses a second Build of the same inputs: one create per inputs, whoever races.
import { createHash } from 'node:crypto';
import {
  pinnedImageReference,
  type Build,
  type BuildSpec,
  type Host,
  type ImageSpec,
} from '../api/v1alpha1/index.js';
import { isTrue } from '../kube/conditions.js';
import type { Resolution } from './imagestatus.js';

/** The label every Build carries with the name of the Image it builds. */
export const buildImageLabel = 'gantry.dev/image';
/** Hosts that build when the Image names no node selector of its own. */
export const defaultBuilderSelector = { 'gantry.dev/builder': 'true' };

/** A ConfigMap's files, as the build reads them. */
export interface ContextSource {
  data?: Record<string, string>;
  binaryData?: Record<string, string>;
}

export type BuildInputs = Omit<BuildSpec, 'nodeName'>;

/** The Build's inputs: the options as given, and the context's files (inline ones win over the ConfigMap's). */
export function buildInputs(spec: ImageSpec, configMap: ContextSource | undefined): BuildInputs {
  const build = spec.build!;
  const inline = { ...build.context.files, ...build.context.binaryFiles };
  const notInline = (entries: Record<string, string> = {}) =>
    Object.fromEntries(Object.entries(entries).filter(([name]) => !(name in inline)));
  const files = { ...notInline(configMap?.data), ...build.context.files };
  const binary = { ...notInline(configMap?.binaryData), ...build.context.binaryFiles };
  return {
    image: spec.image,
    context: {
      ...(Object.keys(files).length > 0 && { files }),
      ...(Object.keys(binary).length > 0 && { binaryFiles: binary }),
    },
    dockerfile: build.dockerfile,
    ...(build.buildArgs && { buildArgs: build.buildArgs }),
    ...(build.target && { target: build.target }),
    ...(build.secrets && { secrets: build.secrets }),
  };
}

/** JSON with object keys sorted, so equal inputs hash equally whatever order they came in. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Ten hex digits of SHA-256 over the canonical inputs. */
export function inputsHash(inputs: BuildInputs): string {
  return createHash('sha256').update(canonical(inputs)).digest('hex').slice(0, 10);
}

/** <image>-<hash>, the Image's name shortened if needed to keep the whole a valid object name. */
export function buildName(imageName: string, hash: string): string {
  const room = 253 - hash.length - 1;
  const prefix = imageName.slice(0, room).replace(/[-.]+$/, '');
  return `${prefix}-${hash}`;
}

/**
 * The builder Host for a new Build: a Ready, schedulable Host the selector picks, chosen by the
 * Build's name (so a retried create names the same Host), or undefined when there is none.
 */
export function pickBuilder(
  hosts: readonly Host[],
  selector: Record<string, string> | undefined,
  name: string,
): string | undefined {
  const wanted = selector ?? defaultBuilderSelector;
  const fit = hosts
    .filter((h) => isTrue(h.status?.conditions, 'Ready') && !h.spec?.unschedulable)
    .filter((h) => Object.entries(wanted).every(([k, v]) => h.metadata.labels?.[k] === v))
    .map((h) => h.metadata.name!)
    .sort();
  if (fit.length === 0) return undefined;
  const n = createHash('sha256').update(name).digest().readUInt32BE(0);
  return fit[n % fit.length];
}

/**
 * Builds kept per Image: the current one and the newest others, so that going back to recent
 * inputs takes their digest again without a build, while the copies of old contexts do not pile up.
 */
export const buildHistoryLimit = 5;

/** The Builds of one Image to delete: all but the current one and the newest others up to the limit. */
export function buildsToPrune(
  builds: readonly Build[],
  current: string,
  limit = buildHistoryLimit,
): string[] {
  const others = builds
    .filter((b) => b.metadata.name !== current)
    .sort((a, b) => {
      const at = String(a.metadata.creationTimestamp ?? '');
      const bt = String(b.metadata.creationTimestamp ?? '');
      if (at !== bt) return at < bt ? 1 : -1;
      return a.metadata.name! < b.metadata.name! ? 1 : -1;
    });
  return others.slice(Math.max(0, limit - 1)).map((b) => b.metadata.name!);
}

const maxMessage = 4096;

/**
 * The Image's resolution from its current Build: the Build's digest once it succeeded, otherwise
 * the digest the Image had (so nothing rolls out while a build runs or after one failed), with a
 * Resolved condition that says which, and names the failing step and its last output lines.
 */
export function buildResolution(
  spec: ImageSpec,
  name: string,
  build: Build | undefined,
  previous: Omit<Resolution, 'resolved'>,
): Resolution {
  const status = build?.status;
  if (status?.phase === 'Succeeded' && status.digest) {
    return {
      digest: status.digest,
      resolvedImage: pinnedImageReference(spec.image, status.digest),
      lastResolvedTime: status.finishedAt ?? previous.lastResolvedTime,
      sizeBytes: previous.digest === status.digest ? previous.sizeBytes : undefined,
      resolved: {
        status: 'True',
        reason: 'Built',
        message: `Build ${name} pushed ${spec.image} as ${status.digest}`,
      },
    };
  }
  const kept = previous.digest ? `; still using ${previous.resolvedImage}` : '';
  if (status?.phase === 'Failed') {
    const step = status.failedStep ? ` at ${status.failedStep}` : '';
    const why = status.message ? `: ${status.message}` : '';
    const tail = status.logTail ? `; last output:\n${status.logTail}` : '';
    return {
      ...previous,
      resolved: {
        status: 'False',
        reason: 'BuildFailed',
        message: `Build ${name} failed${step}${why}${kept}${tail}`.slice(0, maxMessage),
      },
    };
  }
  const where = build ? ` on ${build.spec.nodeName}` : '';
  const state = status?.phase === 'Running' ? 'running' : 'waiting to start';
  return {
    ...previous,
    resolved: { status: 'Unknown', reason: 'Building', message: `Build ${name} is ${state}${where}${kept}` },
  };
}
