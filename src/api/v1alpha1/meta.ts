// What every Gantry kind's object is made of: the API group and version, object names, label and
// annotation maps, date-times, metadata, and defineKind (a kind's CRD facts with its schemas).
// Every rule here is stated once for zod and the CRD (see rules.ts).
import net from 'node:net';
import type { V1ObjectMeta } from '@kubernetes/client-node';
import { z } from 'zod';
import { boundedMap, withRules, type TransitionRule } from './rules.js';

export const GROUP = 'gantry.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

// The patterns below avoid backslashes (`[.]` rather than `\.`) so they can sit inside CEL string literals.
/** One DNS-1123 label (conditions.ts builds condition types from it). */
export const DNS_LABEL = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
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
/** The message of a label value that breaks LABEL_VALUE_PATTERN (selector.ts uses it too). */
export const LABEL_VALUE_MESSAGE =
  'must be a label value: alphanumerics, "-", "_" or ".", alphanumeric at both ends';

/** A DNS-1123 subdomain: the name of most Kubernetes objects, and of Hosts. */
export function objectName() {
  return z.string().min(1).max(253).regex(new RegExp(DNS_SUBDOMAIN_PATTERN), NAME_MESSAGE);
}

/**
 * An IPv4 or IPv6 address as CEL's isIP() takes one (no zone, no IPv4-mapped form), and not written
 * with an IPv4 part inside an IPv6 one ("::1.2.3.4"), which the two checkers might read apart.
 */
export function isIPAddress(s: string): boolean {
  return net.isIP(s) !== 0 && !s.includes('%') && !(s.includes(':') && s.includes('.'));
}

/** An IP address, checked by CEL on the apiserver and by isIPAddress here. */
export function ipAddress() {
  return withRules(z.string().max(45), {
    rule: `isIP(self) && !(self.contains(':') && self.contains('.'))`,
    message: 'must be an IPv4 or IPv6 address, such as 192.0.2.10 or 2001:db8::10',
    check: isIPAddress,
  });
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

export type ObjectMeta = z.output<typeof ObjectMetaSchema>;
