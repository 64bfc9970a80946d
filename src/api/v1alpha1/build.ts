// Build: one run of BuildKit on a builder Host, from a Dockerfile to an image pushed to a registry.
// The Image controller creates one per distinct set of inputs (Image.spec.build), named after their
// hash, so the apiserver's name uniqueness keeps a build from running twice for the same inputs;
// the agent of the Host in spec.nodeName runs it and reports in status. The spec holds the
// inputs themselves (the context's files copied from the ConfigMap), so it is the record of what was
// built and the agent needs no access to ConfigMaps. Immutable.
import { z } from 'zod';
import { conditions, observedGeneration } from './conditions.js';
import { dateTime, defineKind, labelMap, LocalObjectReferenceSchema, objectName } from './meta.js';
import { DIGEST_PATTERN } from './imageref.js';
import { ImageReferenceSchema } from './template.js';
import { boundedMap, celEqual, int32, listMap, withRules, withTransitionRules } from './rules.js';

/**
 * A relative path inside the build context: segments of letters, digits, ".", "_" and "-", none of
 * them "." or "..", so a file can never land outside the context directory.
 */
const SEGMENT = '([A-Za-z0-9_-][A-Za-z0-9._-]*|[.][A-Za-z0-9_-][A-Za-z0-9._-]*|[.][.][A-Za-z0-9._-]+)';
export const CONTEXT_PATH_PATTERN = `^${SEGMENT}(/${SEGMENT})*$`;
const CONTEXT_PATH_RE = new RegExp(CONTEXT_PATH_PATTERN);

export function isContextPath(p: string): boolean {
  return p.length <= 253 && CONTEXT_PATH_RE.test(p);
}

/** Context files by relative path (the total is bounded by the object size limit, about 1 MiB). */
function contextFiles(what: string) {
  return withRules(boundedMap(z.string().max(1_048_576), 256), {
    rule: `self.all(k, size(k) <= 253 && k.matches('${CONTEXT_PATH_PATTERN}'))`,
    message: 'context file names must be relative paths without "." or ".." segments',
    check: (m) => Object.keys(m).every(isContextPath),
  }).describe(what);
}

export const BuildSecretSchema = z
  .object({
    id: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[A-Za-z0-9._-]+$/, 'must be letters, digits, ".", "_" or "-"')
      .describe('The id RUN --mount=type=secret,id=<id> names; mounted at /run/secrets/<id> by default.'),
    secretKeyRef: z
      .object({
        name: objectName().describe('Name of the Secret, in the same namespace.'),
        key: z
          .string()
          .min(1)
          .max(253)
          .regex(/^[-._a-zA-Z0-9]+$/, 'must be a Secret key')
          .describe('Key in the Secret whose value is the build secret.'),
      })
      .describe('The Secret key holding the value.'),
  })
  .describe('A build secret: usable by RUN steps that mount it, never stored in a layer.');

/** What Image.spec.build and Build.spec share: how BuildKit's Dockerfile frontend is asked. */
const buildOptions = {
  dockerfile: z
    .string()
    .min(1)
    .max(253)
    .regex(CONTEXT_PATH_RE, 'must be a relative path inside the context')
    .default('Dockerfile')
    .describe('Path of the Dockerfile inside the context.'),
  buildArgs: boundedMap(z.string().max(4096), 64)
    .optional()
    .describe('Values for the Dockerfile ARGs (docker build --build-arg).'),
  target: z
    .string()
    .min(1)
    .max(63)
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be a stage name')
    .optional()
    .describe('The stage to build (docker build --target); the last stage when unset.'),
  secrets: listMap(BuildSecretSchema, ['id'], 16)
    .optional()
    .describe(
      "Secrets RUN steps may mount (RUN --mount=type=secret,id=...); read by the builder Host's agent, never written into the image.",
    ),
};

export const ImageBuildSchema = withRules(
  z.object({
    context: z
      .object({
        configMap: LocalObjectReferenceSchema.optional().describe(
          'A ConfigMap in this namespace whose keys are file names and whose values are their contents.',
        ),
        files: contextFiles(
          "Files given inline, by relative path; they win over the ConfigMap's of the same name.",
        ).optional(),
        binaryFiles: contextFiles(
          "Binary files given inline, by relative path, base64-encoded (kubectl gantry build sends what is not UTF-8 text this way); they win over the ConfigMap's of the same name.",
        ).optional(),
      })
      .describe('The build context: the files the Dockerfile sees.'),
    ...buildOptions,
    nodeSelector: labelMap()
      .optional()
      .describe('Labels of the Hosts that may build; unset: Hosts labelled gantry.dev/builder=true.'),
  }),
  {
    rule: 'has(self.context.configMap) || has(self.context.files) || has(self.context.binaryFiles)',
    message: 'context needs a configMap, files or binaryFiles',
    fieldPath: '.context',
    check: (b) =>
      b.context.configMap !== undefined ||
      b.context.files !== undefined ||
      b.context.binaryFiles !== undefined,
  },
  {
    rule: '!has(self.context.files) || !has(self.context.binaryFiles) || self.context.binaryFiles.all(k, !(k in self.context.files))',
    message: 'a context file is given once: in files or in binaryFiles, not both',
    fieldPath: '.context',
    check: (b) =>
      !b.context.binaryFiles ||
      Object.keys(b.context.binaryFiles).every((k) => !(k in (b.context.files ?? {}))),
  },
).describe('Build the image from a Dockerfile on a builder Host and push it to spec.image.');

const BuildSpecBase = z.object({
  image: ImageReferenceSchema.describe('Where to push the result: repository:tag.'),
  context: z
    .object({
      files: contextFiles('Text files by relative path.').optional(),
      binaryFiles: contextFiles(
        "Binary files by relative path, base64-encoded (a ConfigMap's binaryData).",
      ).optional(),
    })
    .describe('The build context, copied from the Image when the Build was made.'),
  ...buildOptions,
  nodeName: objectName().describe('The builder Host whose agent runs the build.'),
});

export const BuildSpecSchema = withTransitionRules(BuildSpecBase, [
  {
    rule: 'self == oldSelf',
    message: 'spec is immutable: a Build is one run of fixed inputs; change the Image to build again',
    check: celEqual,
  },
]).describe('The inputs of one build and the Host that runs it. Immutable.');

export const BuildPhaseSchema = z.enum(['Pending', 'Running', 'Succeeded', 'Failed']);

export const BuildStatusSchema = z
  .object({
    observedGeneration: observedGeneration(),
    phase: BuildPhaseSchema.optional().describe(
      'Pending until the agent starts it; Running; Succeeded with a digest; Failed with the failing step.',
    ),
    startedAt: dateTime().optional().describe('When the builder started this run.'),
    finishedAt: dateTime().optional().describe('When it ended.'),
    attempts: int32(0)
      .optional()
      .describe('Runs started; more than one when the agent restarted during a run and ran it again.'),
    digest: z
      .string()
      .regex(new RegExp(DIGEST_PATTERN), 'must be sha256:<64 lower-case hex digits>')
      .optional()
      .describe('Manifest digest of the pushed image.'),
    failedStep: z
      .string()
      .max(4096)
      .optional()
      .describe('The Dockerfile step that failed, as BuildKit names it.'),
    logTail: z.string().max(16384).optional().describe('The last lines of the build output when it failed.'),
    message: z
      .string()
      .max(4096)
      .optional()
      .describe('Why the build failed, in one line; or what a Pending build waits for.'),
    conditions: conditions(
      'Ready: built and pushed; Reconciling while it waits or runs; Stalled once it failed',
    ),
  })
  .describe('Progress and result of the build, written by the agent of the builder Host.');

export const BuildKind = defineKind({
  kind: 'Build',
  plural: 'builds',
  singular: 'build',
  shortNames: ['bld'],
  scope: 'Namespaced',
  description:
    "Build is one BuildKit run of an Image's build inputs on a builder Host (made by the Image controller; docker build and push).",
  spec: BuildSpecSchema,
  status: BuildStatusSchema,
  selectableFields: ['.spec.nodeName'],
  printerColumns: [
    { name: 'Image', type: 'string', jsonPath: '.spec.image', description: 'Where the result is pushed.' },
    { name: 'Host', type: 'string', jsonPath: '.spec.nodeName', description: 'The builder Host.' },
    {
      name: 'Phase',
      type: 'string',
      jsonPath: '.status.phase',
      description: 'Pending, Running, Succeeded or Failed.',
    },
    {
      name: 'Digest',
      type: 'string',
      jsonPath: '.status.digest',
      description: 'Digest pushed.',
      priority: 1,
    },
    {
      name: 'Age',
      type: 'date',
      jsonPath: '.metadata.creationTimestamp',
      description: 'Time since creation.',
    },
  ],
});

export const BuildSchema = BuildKind.schema;
export type Build = z.output<typeof BuildSchema>;
export type BuildInput = z.input<typeof BuildSchema>;
export type BuildSpec = z.output<typeof BuildSpecSchema>;
export type BuildStatus = z.output<typeof BuildStatusSchema>;
export type BuildPhase = z.output<typeof BuildPhaseSchema>;
export type ImageBuild = z.output<typeof ImageBuildSchema>;
