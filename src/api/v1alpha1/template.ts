// The container template that both Container.spec and Workload.spec.template.spec use: image
// reference, command, environment, ports, resources (with the quantity schema) and health check.
import { z } from 'zod';
import {
  IMAGE_REFERENCE_FORMAT,
  IMAGE_REFERENCE_FORMS,
  IMAGE_REFERENCE_PATTERN,
  IMAGE_REFERENCE_PROBLEMS,
  imageReferenceProblem,
  isImageReference,
} from './imageref.js';
import { ipAddress, LocalObjectReferenceSchema, objectName } from './meta.js';
import { compareQuantities, isQuantity, QUANTITY_PATTERN } from './quantity.js';
import { int32, int64, listMap, withRules, type Rule } from './rules.js';

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

const PortBase = z.object({
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
  hostPort: int32(1, 65535)
    .optional()
    .describe(
      "Publish the port on its Host (docker run -p HOSTPORT:PORT): connections to the Host's address on " +
        'this port reach the container. The scheduler puts the Container only on a Host where no other ' +
        'Container holds the same hostPort and protocol. Fixed once the Container is bound.',
    ),
  hostIP: ipAddress()
    .optional()
    .describe(
      "The Host's address to publish hostPort on; unset: the Host's own address (its agent's --node-ip), " +
        'or every address of the machine when the agent has none. 0.0.0.0 or :: is every address.',
    ),
});

const PortSchema = withRules(PortBase, {
  rule: '!has(self.hostIP) || has(self.hostPort)',
  message: 'hostIP needs hostPort (the address is where hostPort is published)',
  fieldPath: '.hostIP',
  check: (p) => p.hostIP === undefined || p.hostPort !== undefined,
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
    rule: 'self.all(p, !has(p.hostPort) || self.exists_one(q, has(q.hostPort) && q.hostPort == p.hostPort && q.protocol == p.protocol))',
    message: 'each hostPort and protocol pair must appear once (a Host publishes a port once)',
    check: (ports) =>
      ports.every(
        (p) =>
          p.hostPort === undefined ||
          ports.filter((q) => q.hostPort === p.hostPort && q.protocol === p.protocol).length === 1,
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

/** A message of imageref.ts as a CEL string expression, `{ref}` being `self`. */
function celMessage(message: string): string {
  if (/['\\]/.test(message)) throw new Error(`a CEL message cannot hold quotes or backslashes: ${message}`);
  return message
    .split('{ref}')
    .map((part) => `'${part}'`)
    .join(' + self + ');
}

/**
 * A CEL rule rather than an OpenAPI pattern, so a refusal says what is wrong in Docker's words
 * (an apiserver refusing a pattern prints the whole regular expression); both accept the same.
 */
export const ImageReferenceSchema = withRules(z.string().min(1).max(512), {
  rule: `self.matches(r'${IMAGE_REFERENCE_PATTERN}')`,
  message: `invalid reference format: an image reference is ${IMAGE_REFERENCE_FORMS}`,
  messageExpression: IMAGE_REFERENCE_PROBLEMS.reduceRight(
    (otherwise, p) => `${p.cel} ? ${celMessage(p.message)} : ${otherwise}`,
    celMessage(IMAGE_REFERENCE_FORMAT),
  ),
  check: isImageReference,
  messageOf: (ref) => imageReferenceProblem(ref) ?? '',
});

function stringList(maxItems: number) {
  return z.array(z.string().max(4096)).max(maxItems);
}

/**
 * Capabilities the Pod Security baseline level lets a container add (containerd's defaults less
 * NET_RAW, which Gantry drops): the only ones `add` accepts, and only useful after a drop of ALL.
 */
export const BASELINE_CAPABILITIES = [
  'AUDIT_WRITE',
  'CHOWN',
  'DAC_OVERRIDE',
  'FOWNER',
  'FSETID',
  'KILL',
  'MKNOD',
  'NET_BIND_SERVICE',
  'SETFCAP',
  'SETGID',
  'SETPCAP',
  'SETUID',
  'SYS_CHROOT',
] as const;

/**
 * How the process runs. Whatever is set here, Gantry runs every container with the runtime's
 * default seccomp profile and without NET_RAW (the Pod Security baseline level); nothing here can
 * widen that: there is no privileged mode, host namespace or unconfined profile.
 */
export const SecurityContextSchema = withRules(
  z.object({
    runAsUser: int32(0).optional().describe("The process's user ID; the image's USER when unset."),
    runAsGroup: int32(0).optional().describe("The process's primary group ID; the image's when unset."),
    runAsNonRoot: z
      .boolean()
      .optional()
      .describe(
        'Refuse to start as root: runAsUser must not be 0, and when it is unset the image must name a non-zero numeric USER.',
      ),
    readOnlyRootFilesystem: z.boolean().optional().describe("Mount the image's filesystem read-only."),
    allowPrivilegeEscalation: z
      .boolean()
      .optional()
      .describe(
        'Let the process gain privileges it did not start with (setuid binaries, file capabilities). Unset means false: the process runs with no_new_privs.',
      ),
    capabilities: z
      .object({
        add: z
          .array(z.enum(BASELINE_CAPABILITIES))
          .max(BASELINE_CAPABILITIES.length)
          .optional()
          .describe('Capabilities to add back after a drop (the Pod Security baseline set only).'),
        drop: z
          .array(
            z
              .string()
              .max(64)
              .regex(/^(ALL|[A-Z][A-Z_]*)$/, 'must be ALL or a capability name such as NET_ADMIN'),
          )
          .max(64)
          .optional()
          .describe('Capabilities to drop from the runtime defaults, or ALL (names without CAP_).'),
      })
      .optional()
      .describe('Linux capabilities to drop, and to add back within the baseline level.'),
  }),
  {
    rule: '!has(self.runAsGroup) || has(self.runAsUser)',
    message: 'runAsGroup needs runAsUser (the runtime takes a group only with a user)',
    fieldPath: '.runAsGroup',
    check: (s) => s.runAsGroup === undefined || s.runAsUser !== undefined,
  },
  {
    rule: '!has(self.runAsNonRoot) || !self.runAsNonRoot || !has(self.runAsUser) || self.runAsUser != 0',
    message: 'runAsNonRoot is true but runAsUser is 0 (root)',
    fieldPath: '.runAsUser',
    check: (s) => !s.runAsNonRoot || s.runAsUser !== 0,
  },
).describe(
  "Who the process runs as and with which privileges (a subset of a Pod container's securityContext).",
);

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
    'Ports the container listens on, unique by containerPort and protocol; a Service reaches them by ' +
      'number or by name (targetPort). A port with hostPort is also published on the Host.',
  ),
  resources: ResourcesSchema.optional(),
  restartPolicy: z
    .enum(['Always', 'OnFailure', 'Never'])
    .default('Always')
    .describe(
      'Restart the process when it exits: Always, OnFailure (non-zero exit) or Never; back-off as Docker.',
    ),
  healthCheck: HealthCheckSchema.optional(),
  securityContext: SecurityContextSchema.optional(),
  terminationGracePeriodSeconds: int32(0, 3600)
    .default(30)
    .describe('Seconds between SIGTERM and SIGKILL when the container is stopped.'),
};

export const ImageFromSchema = z
  .object({ name: objectName().describe('Name of the Image, in the same namespace.') })
  .describe(
    'An Image object whose digest to run (the one its tag resolves to): each new digest rolls out, once pulled onto the Hosts.',
  );

/** A Workload's container: an image reference, or an Image object to follow by digest. */
export const ContainerTemplateSpecSchema = withRules(
  z.object({
    ...containerTemplateFields,
    image: containerTemplateFields.image.optional(),
    imageFrom: ImageFromSchema.optional(),
  }),
  {
    rule: 'has(self.image) != has(self.imageFrom)',
    message: 'exactly one of image or imageFrom must be set',
    check: (t) => (t.image === undefined) !== (t.imageFrom === undefined),
  },
).describe(
  'What to run: image (or imageFrom), command, environment, ports, resources, restarts and health check.',
);

export type Quantity = z.output<typeof QuantitySchema>;
export type Resources = z.output<typeof ResourcesSchema>;
export type EnvVar = z.output<typeof EnvVarSchema>;
export type Port = z.output<typeof PortSchema>;
export type HealthCheck = z.output<typeof HealthCheckSchema>;
export type ContainerTemplateSpec = z.output<typeof ContainerTemplateSpecSchema>;
export type ContainerTemplateSpecInput = z.input<typeof ContainerTemplateSpecSchema>;
