// zod -> CustomResourceDefinition. zod 4 writes an OpenAPI 3.0 schema of each kind's spec and status;
// `structural` reshapes it into what the apiserver accepts (a structural schema) and refuses anything it
// cannot express, so a new zod construct fails generation instead of silently weakening validation.
import { z } from 'zod';
import { GROUP, VERSION, type KindDefinition } from './meta.js';
import { kinds } from './index.js';

export type JSONSchemaProps = { [keyword: string]: unknown };

/** Keywords kept in a structural schema, in the order they are written (description first for readers). */
const KEYWORDS = [
  'description',
  'type',
  'format',
  'x-kubernetes-int-or-string',
  'anyOf',
  'enum',
  'default',
  'minimum',
  'maximum',
  'minLength',
  'maxLength',
  'pattern',
  'minItems',
  'maxItems',
  'maxProperties',
  'items',
  'properties',
  'additionalProperties',
  'required',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-validations',
];

/**
 * A new object reads as `status: {observedGeneration: 0}` until its controller writes status
 * (the apiserver applies schema defaults when it reads from etcd, status included). kstatus, the
 * library behind Flux's and Config Sync's waits, reads a custom resource without status as
 * Current: a pipeline was told "done" in the moment before Gantry's first status write. With an
 * observedGeneration behind metadata.generation (which starts at 1) it reads InProgress instead.
 */
function unobservedByDefault(status: JSONSchemaProps): JSONSchemaProps {
  const properties = status.properties as Record<string, JSONSchemaProps>;
  if (!properties.observedGeneration) throw new Error('status: every kind reports observedGeneration');
  return {
    ...status,
    default: {},
    properties: { ...properties, observedGeneration: { ...properties.observedGeneration, default: 0 } },
  };
}

/** Value validations an int-or-string keeps from its integer and string branches. */
const INT_OR_STRING_KEYWORDS: Record<string, string[]> = {
  integer: ['minimum', 'maximum'],
  string: ['minLength', 'maxLength', 'pattern'],
};

function isObject(v: unknown): v is JSONSchemaProps {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * zod writes `int | string` as anyOf with validations inside the branches; Kubernetes wants
 * x-kubernetes-int-or-string, at most the bare two-type anyOf (kept, as controller-gen does, so OpenAPI
 * clients see both types), and the validations on the node itself (each applies only to its own type).
 */
function intOrString(node: JSONSchemaProps, path: string): JSONSchemaProps {
  const branches = node.anyOf as JSONSchemaProps[];
  const types = branches.map((b) => b.type).sort();
  if (branches.length !== 2 || types[0] !== 'integer' || types[1] !== 'string') {
    throw new Error(`${path}: only integer|string unions can be expressed (x-kubernetes-int-or-string)`);
  }
  const { anyOf: _anyOf, ...rest } = node;
  const merged: JSONSchemaProps = {
    ...rest,
    'x-kubernetes-int-or-string': true,
    anyOf: [{ type: 'integer' }, { type: 'string' }],
  };
  for (const branch of branches) {
    for (const [k, v] of Object.entries(branch)) {
      if (k === 'type') continue;
      if (!INT_OR_STRING_KEYWORDS[branch.type as string]!.includes(k)) {
        throw new Error(`${path}: ${k} on the ${String(branch.type)} branch cannot be expressed`);
      }
      merged[k] = v;
    }
  }
  return merged;
}

/** Turns zod's OpenAPI output into a structural schema; throws on any keyword it cannot carry over. */
export function structural(input: JSONSchemaProps, path: string): JSONSchemaProps {
  let node = { ...input };
  if (node.anyOf !== undefined) node = intOrString(node, path);
  if (node.propertyNames !== undefined) {
    // z.record(z.string(), ...) says keys are strings, which every map key is; key rules live in CEL.
    if (
      !isObject(node.propertyNames) ||
      node.propertyNames.type !== 'string' ||
      Object.keys(node.propertyNames).length !== 1
    ) {
      throw new Error(`${path}: propertyNames cannot be expressed; validate keys with a CEL rule`);
    }
    delete node.propertyNames;
  }
  if (isObject(node.properties)) {
    node.properties = Object.fromEntries(
      Object.entries(node.properties).map(([k, v]) => [k, structural(v as JSONSchemaProps, `${path}.${k}`)]),
    );
  }
  if (isObject(node.items)) node.items = structural(node.items, `${path}[]`);
  if (node.additionalProperties !== undefined) {
    if (!isObject(node.additionalProperties) || Object.keys(node.additionalProperties).length === 0) {
      throw new Error(
        `${path}: additionalProperties must be a schema (strict and loose objects are not structural)`,
      );
    }
    node.additionalProperties = structural(node.additionalProperties, `${path}.*`);
  }
  const unknown = Object.keys(node).filter((k) => !KEYWORDS.includes(k));
  if (unknown.length > 0) throw new Error(`${path}: cannot express ${unknown.join(', ')} in a CRD schema`);
  // kubectl explain prints descriptions but not defaults.
  if (typeof node.description === 'string' && node.default !== undefined && !isObject(node.default)) {
    node.description = `${node.description} Defaults to ${String(node.default)}.`;
  }
  return Object.fromEntries(KEYWORDS.filter((k) => node[k] !== undefined).map((k) => [k, node[k]]));
}

/** The structural schema of one zod schema (input side: defaulted fields are optional). */
export function crdSchema(schema: z.ZodType, path: string): JSONSchemaProps {
  const json = z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input' }) as JSONSchemaProps;
  delete json.$schema;
  return structural(json, path);
}

export function crdName(def: KindDefinition): string {
  return `${def.plural}.${GROUP}`;
}

export function crdFor(def: KindDefinition): JSONSchemaProps {
  const spec = crdSchema(def.schema.shape.spec, 'spec');
  const openAPIV3Schema = {
    description: def.description,
    type: 'object',
    properties: {
      apiVersion: {
        description: `Versioned schema of this object: ${GROUP}/${VERSION}.`,
        type: 'string',
      },
      kind: { description: `Kind of this object: ${def.kind}.`, type: 'string' },
      // Kubernetes validates metadata itself and allows no schema beyond its type here.
      metadata: { type: 'object' },
      spec,
      status: unobservedByDefault(crdSchema(def.status, 'status')),
    },
    ...(def.specDefaultsToEmpty ? {} : { required: ['spec'] }),
  };
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: crdName(def), labels: { 'app.kubernetes.io/part-of': 'gantry' } },
    spec: {
      group: GROUP,
      names: {
        kind: def.kind,
        listKind: `${def.kind}List`,
        plural: def.plural,
        singular: def.singular,
        shortNames: def.shortNames,
        categories: ['gantry'],
      },
      scope: def.scope,
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          schema: { openAPIV3Schema },
          subresources: { status: {}, ...(def.scale ? { scale: def.scale } : {}) },
          additionalPrinterColumns: def.printerColumns.map(
            ({ name, type, jsonPath, description, priority }) => ({
              name,
              type,
              jsonPath,
              description,
              ...(priority !== undefined ? { priority } : {}),
            }),
          ),
          ...(def.selectableFields
            ? { selectableFields: def.selectableFields.map((jsonPath) => ({ jsonPath })) }
            : {}),
        },
      ],
    },
  };
}

const PLAIN_STRING = /^[A-Za-z][A-Za-z0-9 _./()+,=-]*$/;
const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_./-]*$/;
const YAML_KEYWORD = /^(true|false|yes|no|on|off|y|n|null)$/i;

function scalar(v: unknown): string {
  if (typeof v === 'string') {
    const plain = PLAIN_STRING.test(v) && !v.endsWith(' ') && !YAML_KEYWORD.test(v);
    // JSON string syntax is also YAML double-quoted syntax.
    return plain ? v : JSON.stringify(v);
  }
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v) && v.length === 0) return '[]';
  if (isObject(v) && Object.keys(v).length === 0) return '{}';
  throw new Error(`cannot write ${JSON.stringify(v)} as a YAML scalar`);
}

function isNested(v: unknown): boolean {
  return (Array.isArray(v) && v.length > 0) || (isObject(v) && Object.keys(v).length > 0);
}

function yamlLines(value: unknown, indent: string): string[] {
  if (Array.isArray(value)) {
    return value.flatMap((item) => {
      if (!isNested(item)) return [`${indent}- ${scalar(item)}`];
      const [first = '', ...rest] = yamlLines(item, `${indent}  `);
      return [`${indent}- ${first.slice(indent.length + 2)}`, ...rest];
    });
  }
  return Object.entries(value as JSONSchemaProps).flatMap(([k, v]) => {
    const key = PLAIN_KEY.test(k) ? k : JSON.stringify(k);
    return isNested(v)
      ? [`${indent}${key}:`, ...yamlLines(v, `${indent}  `)]
      : [`${indent}${key}: ${scalar(v)}`];
  });
}

/** Block-style YAML of a JSON value, deterministic (insertion order) so regeneration is byte-stable. */
export function toYaml(value: JSONSchemaProps): string {
  return `${yamlLines(value, '').join('\n')}\n`;
}

export const CRD_HEADER =
  '# Generated by `npm run gen:crds` from src/api/v1alpha1 (zod schemas); do not edit.\n';

/** File name (crds/<plural>.gantry.dev.yaml) -> content, for every kind. */
export function renderCrds(): Map<string, string> {
  return new Map(
    Object.values(kinds).map((def) => [`${crdName(def)}.yaml`, CRD_HEADER + toYaml(crdFor(def))] as const),
  );
}
