// Image: an image reference kept warm on a set of hosts (Docker's `docker pull`, done ahead of need).
import { z } from 'zod';
import { conditions, observedGeneration } from './conditions.js';
import { dateTime, defineKind, labelMap, LocalObjectReferenceSchema, objectName } from './meta.js';
import { ImageReferenceSchema } from './template.js';
import { ImageBuildSchema } from './build.js';
import { DIGEST_PATTERN } from './imageref.js';
import { int32, int64, listMap, withRules } from './rules.js';

/**
 * A duration in Go syntax, units in order h, m, s, ms, at most five digits each (e.g. "10m", "1h30m"):
 * bounded so that CEL's duration() never overflows (it fails beyond about 2.5 million hours).
 */
export const DURATION_PATTERN = '^([0-9]{1,5}h)?([0-9]{1,5}m)?([0-9]{1,5}s)?([0-9]{1,5}ms)?$';
const DURATION_PART = /([0-9]+)(ms|s|m|h)/g;
const UNIT_MILLIS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds in a duration matching DURATION_PATTERN. */
export function durationMillis(duration: string): number {
  let total = 0;
  for (const [, amount, unit] of duration.matchAll(DURATION_PART))
    total += Number(amount) * UNIT_MILLIS[unit!]!;
  return total;
}

export const ImageSpecSchema = withRules(
  z.object({
    image: ImageReferenceSchema.describe(
      'Image to keep on the hosts, as Docker names it: nginx, ghcr.io/org/app:1.2 or repo@sha256:<digest>.',
    ),
    pullSecrets: listMap(LocalObjectReferenceSchema, ['name'], 16)
      .optional()
      .describe(
        'Secrets (kubernetes.io/dockerconfigjson) in this namespace with credentials for the registry.',
      ),
    nodeSelector: labelMap()
      .optional()
      .describe('Labels of the Hosts that keep the image; every Host when unset.'),
    pullPolicy: z
      .enum(['IfNotPresent', 'Always'])
      .default('IfNotPresent')
      .describe('IfNotPresent pulls only where the digest is missing; Always pulls again at every refresh.'),
    refreshInterval: z
      .string()
      .min(2)
      .max(32)
      .regex(new RegExp(DURATION_PATTERN), 'must be a duration such as 90s, 10m or 1h30m')
      .optional()
      .describe(
        'How often to resolve the tag to a digest again, as a duration ("10m", "1h30m", at least 1m); ' +
          'unset resolves once. Not allowed with a digest reference.',
      ),
    keep: z
      .boolean()
      .default(false)
      .describe("Protect the image from the runtime's image garbage collection on the selected hosts."),
    build: ImageBuildSchema.optional().describe(
      'Build the image from a Dockerfile on a builder Host and push it to spec.image (repository:tag); ' +
        "rebuilt whenever these inputs or the ConfigMap's files change.",
    ),
  }),
  {
    rule: "!has(self.build) || !self.image.contains('@')",
    message: 'a built image is pushed to a tag: spec.image must be repository:tag, not a digest',
    reason: 'FieldValueForbidden',
    fieldPath: '.image',
    check: (s) => s.build === undefined || !s.image.includes('@'),
  },
  {
    rule: '!has(self.build) || !has(self.refreshInterval)',
    message: 'refreshInterval has no meaning for a built image: it is rebuilt when its inputs change',
    reason: 'FieldValueForbidden',
    fieldPath: '.refreshInterval',
    check: (s) => s.build === undefined || s.refreshInterval === undefined,
  },
  {
    rule: "!has(self.refreshInterval) || !self.image.contains('@')",
    message: 'refreshInterval has no meaning for an image pinned by digest',
    reason: 'FieldValueForbidden',
    fieldPath: '.refreshInterval',
    check: (s) => s.refreshInterval === undefined || !s.image.includes('@'),
  },
  {
    rule: "!has(self.refreshInterval) || duration(self.refreshInterval) >= duration('1m')",
    message: 'refreshInterval must be at least 1m',
    fieldPath: '.refreshInterval',
    check: (s) => s.refreshInterval === undefined || durationMillis(s.refreshInterval) >= 60_000,
  },
).describe('Which image to keep warm, where, and how to pull it.');

const hostCount = (what: string) => int32(0).optional().describe(what);

export const ImageStatusSchema = z
  .object({
    observedGeneration: observedGeneration(),
    digest: z
      .string()
      .regex(new RegExp(DIGEST_PATTERN), 'must be sha256:<64 lower-case hex digits>')
      .optional()
      .describe('Manifest digest the reference resolved to (sha256:...).'),
    resolvedImage: ImageReferenceSchema.optional().describe(
      'The digest-pinned reference the hosts pull: registry/path@sha256:...',
    ),
    lastResolvedTime: dateTime().optional().describe('When the reference was last resolved to a digest.'),
    sizeBytes: int64().optional().describe('Size of the image (compressed layers and config) in bytes.'),
    desiredHosts: hostCount(
      'Number of Ready Hosts the node selector picks (a lost Host is left out until it is back).',
    ),
    readyHosts: hostCount('Number of those Hosts that hold the resolved digest.'),
    pullingHosts: hostCount('Number of Hosts pulling now.'),
    failedHosts: hostCount('Number of Hosts whose last pull failed.'),
    failures: listMap(
      z.object({
        host: objectName().describe('Name of the Host.'),
        reason: z.string().max(1024).describe('Short CamelCase cause, e.g. ErrImagePull or Unauthorized.'),
        message: z.string().max(4096).describe('The error the runtime returned.'),
      }),
      ['host'],
      10,
    )
      .optional()
      .describe('The last pull error of up to 10 failing Hosts.'),
    build: objectName()
      .optional()
      .describe('The Build of the current inputs (spec.build), whose result the digest is once it succeeds.'),
    conditions: conditions(
      'Resolved: the reference resolved to a digest (for a built image: the newest Build succeeded); Ready: every desired Host holds it',
    ),
  })
  .describe('Resolved digest and how many Hosts hold it, written by the controller.');

export const ImageKind = defineKind({
  kind: 'Image',
  plural: 'images',
  singular: 'image',
  shortNames: ['img'],
  scope: 'Namespaced',
  description:
    'Image keeps a container image pulled on a set of Hosts, resolving a tag to a digest (docker pull, ahead of need).',
  spec: ImageSpecSchema,
  status: ImageStatusSchema,
  printerColumns: [
    { name: 'Ref', type: 'string', jsonPath: '.spec.image', description: 'Image reference.' },
    { name: 'Digest', type: 'string', jsonPath: '.status.digest', description: 'Resolved digest.' },
    {
      name: 'Ready',
      type: 'integer',
      jsonPath: '.status.readyHosts',
      description: 'Hosts holding the image.',
    },
    { name: 'Desired', type: 'integer', jsonPath: '.status.desiredHosts', description: 'Hosts that should.' },
    {
      name: 'Age',
      type: 'date',
      jsonPath: '.metadata.creationTimestamp',
      description: 'Time since creation.',
    },
  ],
});

export const ImageSchema = ImageKind.schema;
export type Image = z.output<typeof ImageSchema>;
export type ImageInput = z.input<typeof ImageSchema>;
export type ImageSpec = z.output<typeof ImageSpecSchema>;
export type ImageSpecInput = z.input<typeof ImageSpecSchema>;
export type ImageStatus = z.output<typeof ImageStatusSchema>;
