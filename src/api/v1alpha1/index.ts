// The gantry.dev/v1alpha1 API: the six kinds, their types, and safe parsing of objects read from the
// apiserver (a bad object becomes an error string for a condition, never an exception).
import type { z } from 'zod';
import { BuildKind } from './build.js';
import { ContainerKind } from './container.js';
import { HostKind } from './host.js';
import { ImageKind } from './image.js';
import { MigrationKind } from './migration.js';
import { transitionErrors, type TransitionRule } from './rules.js';
import { WorkloadKind } from './workload.js';

export * from './build.js';
export * from './conditions.js';
export * from './container.js';
export * from './host.js';
export * from './image.js';
export * from './imageref.js';
export * from './labels.js';
export * from './meta.js';
export * from './metrics.js';
export * from './migration.js';
export * from './quantity.js';
export * from './selector.js';
export * from './template.js';
export * from './workload.js';
export type { CelRule, Rule, TransitionRule } from './rules.js';

/** Every kind of the API, by kind name. */
export const kinds = {
  Image: ImageKind,
  Container: ContainerKind,
  Workload: WorkloadKind,
  Host: HostKind,
  Migration: MigrationKind,
  Build: BuildKind,
} as const;

export type KindName = keyof typeof kinds;
export type ObjectOf<K extends KindName> = z.output<(typeof kinds)[K]['schema']>;
/** What a client may send: defaulted fields may be left out (the apiserver fills them in). */
export type InputOf<K extends KindName> = z.input<(typeof kinds)[K]['schema']>;
export type SpecOf<K extends KindName> = z.output<(typeof kinds)[K]['spec']>;
export type StatusOf<K extends KindName> = z.output<(typeof kinds)[K]['status']>;

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: string };

/** "spec.replicas: Too small: expected number to be >=0; spec.image: Invalid string" */
export function formatZodError(error: z.ZodError, prefix: (string | number)[] = []): string {
  return error.issues
    .map((issue) => {
      const path = [...prefix, ...issue.path].map(String).join('.');
      return path ? `${path}: ${issue.message}` : issue.message;
    })
    .join('; ');
}

function parseWith<S extends z.ZodType>(
  schema: S,
  value: unknown,
  prefix: string[],
): ParseResult<z.output<S>> {
  const result = schema.safeParse(value);
  return result.success
    ? { ok: true, value: result.data }
    : { ok: false, error: formatZodError(result.error, prefix) };
}

/** Validates and defaults a whole object (as read from the apiserver) of the given kind. */
export function parseObject<K extends KindName>(kind: K, value: unknown): ParseResult<ObjectOf<K>> {
  return parseWith(kinds[kind].schema, value, []) as ParseResult<ObjectOf<K>>;
}

export function parseSpec<K extends KindName>(kind: K, value: unknown): ParseResult<SpecOf<K>> {
  return parseWith(kinds[kind].spec, value, ['spec']) as ParseResult<SpecOf<K>>;
}

export function parseStatus<K extends KindName>(kind: K, value: unknown): ParseResult<StatusOf<K>> {
  return parseWith(kinds[kind].status, value, ['status']) as ParseResult<StatusOf<K>>;
}

/** Messages of the transition rules (immutability) that changing oldSpec into spec breaks. */
export function validateSpecUpdate<K extends KindName>(
  kind: K,
  spec: SpecOf<K>,
  oldSpec: SpecOf<K>,
): string[] {
  const rules = kinds[kind].specUpdateRules as TransitionRule<SpecOf<K>>[];
  return transitionErrors(rules, spec, oldSpec).map((m) => `spec: ${m}`);
}
