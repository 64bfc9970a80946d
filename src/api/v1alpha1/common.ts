// Types shared by the Gantry kinds: names, labels, conditions, quantities and the container template that
// both Container and Workload use. Every rule here is stated once for zod and the CRD (see rules.ts).
import type { V1ObjectMeta } from '@kubernetes/client-node';
import { z } from 'zod';
import { IMAGE_REFERENCE_PATTERN } from './imageref.js';
import { compareQuantities, isQuantity, QUANTITY_PATTERN } from './quantity.js';
import { boundedMap, int32, int64, listMap, withRules, type Rule, type TransitionRule } from './rules.js';

export const GROUP = 'gantry.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

// The patterns below avoid backslashes (`[.]` rather than `\.`) so they can sit inside CEL string literals.
const DNS_LABEL = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
export const DNS_SUBDOMAIN_PATTERN = `^${DNS_LABEL}([.]${DNS_LABEL})*$`;
const LABEL_NAME = '[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?';
const BOUNDED_DNS_LABEL = '[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?';
/** Label and annotation keys: an optional DNS-subdomain prefix and '/', then a name of up to 63 characters. */
export const LABEL_KEY_PATTERN = `^(${BOUNDED_DNS_LABEL}([.]${BOUNDED_DNS_LABEL})*/)?${LABEL_NAME}$`;
export const LABEL_KEY_MAX_LENGTH = 317;
export const LABEL_VALUE_PATTERN = `^(${LABEL_NAME})?$`;
const LABEL_KEY_RE = new RegExp(LABEL_KEY_PATTERN);

export function isLabelKey(key: string): boolean {
  return key.length <= LABEL_KEY_MAX_LENGTH && LABEL_KEY_RE.test(key);
}

const NAME_MESSAGE =
  'must be a DNS subdomain: lower-case alphanumerics, "-" and ".", alphanumeric at both ends';
const LABEL_VALUE_MESSAGE =
  'must be a label value: alphanumerics, "-", "_" or ".", alphanumeric at both ends';

/** A DNS-1123 subdomain: the name of most Kubernetes objects, and of Hosts. */
export function objectName() {
  return z.string().min(1).max(253).regex(new RegExp(DNS_SUBDOMAIN_PATTERN), NAME_MESSAGE);
}

export const LocalObjectReferenceSchema = z
  .object({ name: objectName().describe('Name of the object, in the same namespace.') })
  .describe('A reference to an object in the same namespace.');

/** Labels or a node selector: at most 64 entries, keys and values with Kubernetes label syntax. */
export function labelMap() {
  return withRules(
    boundedMap(z.string().max(63).regex(new RegExp(LABEL_VALUE_PATTERN), LABEL_VALUE_MESSAGE), 64),
    {
      rule: `self.all(k, size(k) <= ${LABEL_KEY_MAX_LENGTH} && k.matches('${LABEL_KEY_PATTERN}'))`,
      message:
        'keys must be label keys: an optional DNS subdomain and "/", then 1-63 alphanumerics, "-", "_" or "."',
      check: (m) => Object.keys(m).every(isLabelKey),
    },
  );
}

/** Annotations: free-form values, keys with label-key syntax. */
export function annotationMap() {
  return withRules(boundedMap(z.string().max(4096), 64), {
    rule: `self.all(k, size(k) <= ${LABEL_KEY_MAX_LENGTH} && k.matches('${LABEL_KEY_PATTERN}'))`,
    message:
      'keys must be annotation keys: an optional DNS subdomain and "/", then 1-63 alphanumerics, "-", "_" or "."',
    check: (m) => Object.keys(m).every(isLabelKey),
  });
}

const DATE_TIME_TIME_RE = /^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$/;

/** The apiserver's `format: date-time` check (kube-openapi strfmt.IsDateTime), e.g. 2025-01-31T12:00:00Z. */
export function isDateTime(value: string): boolean {
  const parts = value.toLowerCase().split('t');
  const [date = '', time = ''] = parts;
  if (parts.length < 2 || !/^[0-9]{4}-[0-9]{2}-[0-9]{2}$/.test(date)) return false;
  const [y, mo, d] = date.split('-').map(Number) as [number, number, number];
  // setUTCFullYear, not Date.UTC, which reads years 0-99 as 1900-1999.
  const day = new Date(0);
  day.setUTCFullYear(y, mo - 1, d);
  if (day.getUTCFullYear() !== y || day.getUTCMonth() !== mo - 1 || day.getUTCDate() !== d) return false;
  const m = DATE_TIME_TIME_RE.exec(time);
  return !!m && m[1]! <= '23' && m[2]! <= '59' && m[3]! <= '59';
}

export function dateTime() {
  return z
    .string()
    .refine(isDateTime, 'must be an RFC 3339 date-time, e.g. 2025-01-31T12:00:00Z')
    .meta({ format: 'date-time' });
}

export const CONDITION_TYPE_PATTERN = `^(${DNS_LABEL}([.]${DNS_LABEL})*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$`;
export const CONDITION_REASON_PATTERN = '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$';

/** Shaped exactly like metav1.Condition, so kstatus, Flux and Argo CD read it. */
export const ConditionSchema = z
  .object({
    type: z
      .string()
      .max(316)
      .regex(
        new RegExp(CONDITION_TYPE_PATTERN),
        'must be a CamelCase type, optionally prefixed by a domain and "/"',
      )
      .describe('Type of the condition in CamelCase, e.g. Ready.'),
    status: z.enum(['True', 'False', 'Unknown']).describe('Status of the condition: True, False or Unknown.'),
    observedGeneration: int64()
      .optional()
      .describe(
        'The .metadata.generation the condition was computed from; older than the current generation means out of date.',
      ),
    lastTransitionTime: dateTime().describe('When the condition last changed from one status to another.'),
    reason: z
      .string()
      .min(1)
      .max(1024)
      .regex(new RegExp(CONDITION_REASON_PATTERN), 'must be a CamelCase identifier')
      .describe('Why the condition last changed, as a CamelCase identifier for programs.'),
    message: z.string().max(32768).describe('Details of the last change, for humans; may be empty.'),
  })
  .describe('One aspect of the current state (metav1.Condition).');

export function conditions(types: string) {
  return listMap(ConditionSchema, ['type'], 16)
    .optional()
    .describe(`Latest observations of the object's state, one per type (${types}).`);
}

export function observedGeneration() {
  return int64().optional().describe('The .metadata.generation this status describes.');
}

/**
 * Kubernetes quantity, as an integer or a string (x-kubernetes-int-or-string): 2, "500m", "1.5Gi".
 * The CEL side compares quantities with quantity(string(x)), which accepts both forms.
 */
export const QuantitySchema = z.union([
  int64(),
  z.string().max(64).regex(new RegExp(QUANTITY_PATTERN), 'must be a quantity such as 500m, 2 or 1Gi'),
]);

export const ResourceListSchema = z.object({
  cpu: QuantitySchema.optional().describe('CPU in cores: 1, 0.5 or 500m (millicores).'),
  memory: QuantitySchema.optional().describe('Memory in bytes: 134217728, 128Mi, 1Gi or 1e9.'),
});

function limitNotBelowRequest(resource: 'cpu' | 'memory'): Rule<z.output<typeof ResourcesBase>> {
  return {
    rule:
      `!has(self.requests) || !has(self.limits) || !has(self.requests.${resource}) || !has(self.limits.${resource}) || ` +
      `quantity(string(self.limits.${resource})).compareTo(quantity(string(self.requests.${resource}))) >= 0`,
    message: `limits.${resource} must be greater than or equal to requests.${resource}`,
    fieldPath: `.limits.${resource}`,
    check: (r) => {
      const request = r.requests?.[resource];
      const limit = r.limits?.[resource];
      // Malformed quantities are reported by the pattern; only well-formed pairs are compared.
      if (request === undefined || limit === undefined || !isQuantity(request) || !isQuantity(limit))
        return true;
      return compareQuantities(limit, request) >= 0;
    },
  };
}

const ResourcesBase = z.object({
  requests: ResourceListSchema.optional().describe(
    'Resources the scheduler reserves on the Host; requests on a Host never add up to more than its allocatable.',
  ),
  limits: ResourceListSchema.optional().describe(
    'Hard caps enforced by the runtime (cgroups); a container using more memory is killed.',
  ),
});

export const ResourcesSchema = withRules(
  ResourcesBase,
  limitNotBelowRequest('cpu'),
  limitNotBelowRequest('memory'),
).describe(
  'Compute resources: what the scheduler reserves (requests) and what the runtime enforces (limits).',
);

export const ENV_NAME_PATTERN = '^[-._a-zA-Z][-._a-zA-Z0-9]*$';

export const EnvVarSchema = z.object({
  name: z
    .string()
    .min(1)
    .max(256)
    .regex(
      new RegExp(ENV_NAME_PATTERN),
      'must be letters, digits, "_", "-" or ".", not starting with a digit',
    )
    .describe('Variable name: letters, digits, "_", "-" or ".", not starting with a digit.'),
  value: z.string().max(32768).optional().describe('Value; empty when unset.'),
});

const PortSchema = z.object({
  name: withRules(
    z
      .string()
      .max(15)
      .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be lower-case alphanumerics and "-"'),
    {
      rule: "self.matches('[a-z]')",
      message: 'a port name must contain at least one letter',
      check: (s) => /[a-z]/.test(s),
    },
  )
    .optional()
    .describe(
      'Optional IANA service name for the port (lower case, up to 15 characters, at least one letter).',
    ),
  containerPort: int32(1, 65535).describe('Port the process listens on inside the container (1-65535).'),
  protocol: z.enum(['TCP', 'UDP']).default('TCP').describe('TCP or UDP.'),
});

export const PortsSchema = withRules(
  z.array(PortSchema).max(64),
  {
    rule: 'self.all(p, self.exists_one(q, q.containerPort == p.containerPort && q.protocol == p.protocol))',
    message: 'each containerPort and protocol pair must appear once',
    check: (ports) =>
      ports.every(
        (p) =>
          ports.filter((q) => q.containerPort === p.containerPort && q.protocol === p.protocol).length === 1,
      ),
  },
  {
    rule: 'self.all(p, !has(p.name) || self.exists_one(q, has(q.name) && q.name == p.name))',
    message: 'port names must be unique',
    check: (ports) =>
      ports.every((p) => p.name === undefined || ports.filter((q) => q.name === p.name).length === 1),
  },
);

const port = () => int32(1, 65535);

const HealthCheckBase = z.object({
  exec: z
    .object({
      command: z
        .array(z.string().max(4096))
        .min(1)
        .max(64)
        .describe('Command run inside the container, not through a shell; exit status 0 is healthy.'),
    })
    .optional()
    .describe('Run a command in the container (Docker HEALTHCHECK CMD).'),
  httpGet: z
    .object({
      path: z
        .string()
        .max(2048)
        .regex(/^\//, 'must start with "/"')
        .default('/')
        .describe('Path to request; must start with "/".'),
      port: port().describe('Port on the container IP.'),
      scheme: z.enum(['HTTP']).default('HTTP').describe('Only HTTP is supported.'),
    })
    .optional()
    .describe('HTTP GET against the container IP; a 2xx or 3xx answer is healthy.'),
  tcpSocket: z
    .object({ port: port().describe('Port on the container IP.') })
    .optional()
    .describe('Open a TCP connection to the container IP; success is healthy.'),
  intervalSeconds: int32(1, 86400).default(30).describe('Seconds between checks.'),
  timeoutSeconds: int32(1, 3600).default(30).describe('Seconds before one check counts as failed.'),
  retries: int32(1, 100).default(3).describe('Consecutive failures before the container is Unhealthy.'),
  startPeriodSeconds: int32(0, 86400)
    .default(0)
    .describe('Grace period after start during which failures do not count (health stays Starting).'),
});

export const HealthCheckSchema = withRules(HealthCheckBase, {
  rule: '(has(self.exec) ? 1 : 0) + (has(self.httpGet) ? 1 : 0) + (has(self.tcpSocket) ? 1 : 0) == 1',
  message: 'exactly one of exec, httpGet or tcpSocket must be set',
  check: (h) => [h.exec, h.httpGet, h.tcpSocket].filter((x) => x !== undefined).length === 1,
}).describe(
  'How the agent checks the container is healthy, like Docker HEALTHCHECK; exactly one probe kind.',
);

export const ImageReferenceSchema = z
  .string()
  .min(1)
  .max(512)
  .regex(
    new RegExp(IMAGE_REFERENCE_PATTERN),
    'must be an image reference: [registry[:port]/]path[:tag][@sha256:<64 hex>], path in lower case',
  );

function stringList(maxItems: number) {
  return z.array(z.string().max(4096)).max(maxItems);
}

/** Fields of one container, shared by Container.spec and Workload.spec.template.spec. */
export const containerTemplateFields = {
  image: ImageReferenceSchema.describe(
    'Image as Docker names it: nginx, ghcr.io/org/app:1.2 or repo@sha256:<digest>. No registry means ' +
      'docker.io; no tag and no digest means :latest.',
  ),
  imagePullPolicy: z
    .enum(['Always', 'IfNotPresent', 'Never'])
    .optional()
    .describe('When to pull. Unset: Always for tag latest (or no tag), otherwise IfNotPresent, as for Pods.'),
  imagePullSecrets: listMap(LocalObjectReferenceSchema, ['name'], 16)
    .optional()
    .describe(
      'Secrets (kubernetes.io/dockerconfigjson) in this namespace with credentials for the registry.',
    ),
  command: stringList(256).optional().describe('Replaces the image ENTRYPOINT; not run through a shell.'),
  args: stringList(256).optional().describe('Replaces the image CMD (the arguments to the entrypoint).'),
  workingDir: z
    .string()
    .max(4096)
    .regex(/^\//, 'must be an absolute path')
    .optional()
    .describe('Absolute working directory; the image WORKDIR when unset.'),
  env: listMap(EnvVarSchema, ['name'], 256)
    .optional()
    .describe('Environment variables, added to those of the image; names are unique.'),
  ports: PortsSchema.optional().describe(
    'Ports the container listens on, unique by containerPort and protocol.',
  ),
  resources: ResourcesSchema.optional(),
  restartPolicy: z
    .enum(['Always', 'OnFailure', 'Never'])
    .default('Always')
    .describe(
      'Restart the process when it exits: Always, OnFailure (non-zero exit) or Never; back-off as Docker.',
    ),
  healthCheck: HealthCheckSchema.optional(),
  terminationGracePeriodSeconds: int32(0, 3600)
    .default(30)
    .describe('Seconds between SIGTERM and SIGKILL when the container is stopped.'),
};

export const ContainerTemplateSpecSchema = z
  .object(containerTemplateFields)
  .describe('What to run: image, command, environment, ports, resources, restarts and health check.');

const LabelSelectorRequirementSchema = withRules(
  z.object({
    key: z
      .string()
      .max(LABEL_KEY_MAX_LENGTH)
      .regex(
        new RegExp(LABEL_KEY_PATTERN),
        'must be a label key: an optional DNS subdomain and "/", then a name',
      )
      .describe('Label key the requirement applies to.'),
    operator: z
      .enum(['In', 'NotIn', 'Exists', 'DoesNotExist'])
      .describe('In, NotIn, Exists or DoesNotExist.'),
    values: z
      .array(z.string().max(63).regex(new RegExp(LABEL_VALUE_PATTERN), LABEL_VALUE_MESSAGE))
      .max(64)
      .optional()
      .describe('Label values: non-empty for In and NotIn, empty for Exists and DoesNotExist.'),
  }),
  {
    rule: "self.operator in ['In', 'NotIn'] ? has(self.values) && size(self.values) > 0 : !has(self.values) || size(self.values) == 0",
    message: 'values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist',
    fieldPath: '.values',
    check: (r) => {
      const hasValues = (r.values ?? []).length > 0;
      return (r.operator === 'In' || r.operator === 'NotIn') === hasValues;
    },
  },
);

/** metav1.LabelSelector; an empty selector is refused (it would select everything). */
export const LabelSelectorSchema = withRules(
  z.object({
    matchLabels: labelMap().optional().describe('Labels that must all be present with these values.'),
    matchExpressions: z
      .array(LabelSelectorRequirementSchema)
      .max(16)
      .optional()
      .describe('Requirements that must all hold.'),
  }),
  {
    rule: '(has(self.matchLabels) && size(self.matchLabels) > 0) || (has(self.matchExpressions) && size(self.matchExpressions) > 0)',
    message: 'selector must have at least one of matchLabels or matchExpressions',
    reason: 'FieldValueRequired',
    check: (s) => Object.keys(s.matchLabels ?? {}).length > 0 || (s.matchExpressions ?? []).length > 0,
  },
);

/** Whether labels satisfy the selector, with metav1.LabelSelector semantics. */
export function selectorMatches(selector: LabelSelector, labels: Record<string, string>): boolean {
  const has = (k: string) => Object.hasOwn(labels, k);
  return (
    Object.entries(selector.matchLabels ?? {}).every(([k, v]) => has(k) && labels[k] === v) &&
    (selector.matchExpressions ?? []).every((e) => {
      switch (e.operator) {
        case 'In':
          return has(e.key) && (e.values ?? []).includes(labels[e.key]!);
        case 'NotIn':
          return !has(e.key) || !(e.values ?? []).includes(labels[e.key]!);
        case 'Exists':
          return has(e.key);
        case 'DoesNotExist':
          return !has(e.key);
      }
    })
  );
}

/**
 * The string form of a selector, as metav1.FormatLabelSelector writes it (requirements sorted by key),
 * for status.selector and so the /scale subresource.
 */
export function formatLabelSelector(selector: LabelSelector): string {
  const requirements: [string, string][] = [
    ...Object.entries(selector.matchLabels ?? {}).map(([k, v]): [string, string] => [k, `${k}=${v}`]),
    ...(selector.matchExpressions ?? []).map((e): [string, string] => {
      const values = [...(e.values ?? [])].sort().join(',');
      switch (e.operator) {
        case 'In':
          return [e.key, `${e.key} in (${values})`];
        case 'NotIn':
          return [e.key, `${e.key} notin (${values})`];
        case 'Exists':
          return [e.key, e.key];
        case 'DoesNotExist':
          return [e.key, `!${e.key}`];
      }
    }),
  ];
  return requirements
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, text]) => text)
    .join(',');
}

/** Checkpoint keeps memory state (CRIU); Restart stops the container and starts it anew on the target. */
export const MigrationModeSchema = z.enum(['Checkpoint', 'Restart']);
export const MigrationFallbackSchema = z.enum(['Restart', 'None']);

/**
 * metav1.ObjectMeta: the apiserver validates it, so zod only checks that it is an object, and the
 * TypeScript type is client-node's, which makes every Gantry object a KubernetesObject.
 */
export const ObjectMetaSchema = z.custom<V1ObjectMeta>(
  (v) => typeof v === 'object' && v !== null && !Array.isArray(v),
  'metadata must be an object',
);

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description: string;
  /** 1 = shown only with `-o wide`. */
  priority?: number;
}

export interface KindOptions<Spec extends z.ZodObject, Status extends z.ZodObject> {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  scope: 'Namespaced' | 'Cluster';
  /** Shown by `kubectl explain <kind>`. */
  description: string;
  spec: Spec;
  /** An omitted spec defaults to {} (so its own defaults apply) instead of being required. */
  specDefaultsToEmpty?: boolean;
  status: Status;
  /** Transition rules placed on spec (CEL with oldSelf); zod cannot check them, `validateSpecUpdate` does. */
  specUpdateRules?: TransitionRule<z.output<Spec>>[];
  printerColumns: PrinterColumn[];
  /** Fields usable in field selectors (CRD selectableFields), e.g. `.spec.nodeName`. */
  selectableFields?: string[];
  /** The /scale subresource. */
  scale?: { specReplicasPath: string; statusReplicasPath: string; labelSelectorPath: string };
}

/** A kind: its CRD facts, spec and status schemas, and the zod schema of a whole object. */
export function defineKind<Spec extends z.ZodObject, Status extends z.ZodObject, K extends string>(
  options: KindOptions<Spec, Status> & { kind: K },
) {
  const spec = options.specDefaultsToEmpty ? options.spec.prefault({} as z.input<Spec>) : options.spec;
  const schema = z.object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal(options.kind),
    metadata: ObjectMetaSchema,
    spec,
    status: options.status.optional(),
  });
  return { ...options, specUpdateRules: options.specUpdateRules ?? [], schema };
}

export type KindDefinition = ReturnType<typeof defineKind>;

export type Condition = z.output<typeof ConditionSchema>;
export type ConditionStatus = Condition['status'];
export type Quantity = z.output<typeof QuantitySchema>;
export type Resources = z.output<typeof ResourcesSchema>;
export type EnvVar = z.output<typeof EnvVarSchema>;
export type Port = z.output<typeof PortSchema>;
export type HealthCheck = z.output<typeof HealthCheckSchema>;
export type ContainerTemplateSpec = z.output<typeof ContainerTemplateSpecSchema>;
export type ContainerTemplateSpecInput = z.input<typeof ContainerTemplateSpecSchema>;
export type LabelSelector = z.output<typeof LabelSelectorSchema>;
export type MigrationMode = z.output<typeof MigrationModeSchema>;
export type MigrationFallback = z.output<typeof MigrationFallbackSchema>;
export type ObjectMeta = z.output<typeof ObjectMetaSchema>;
