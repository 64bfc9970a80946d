// Helpers that state a validation once and give it to both checkers: the CEL rule, list or map semantics
// go into the CRD (through zod metadata, which crd.ts turns into x-kubernetes-* keys) and the same predicate
// becomes a zod refinement, so the controller's parse and the apiserver's admission agree.
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';

// FieldValueDuplicate is left out on purpose: the apiserver then reports `Duplicate value: "array"` and drops the message.
export type CelReason = 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired';

/** One entry of x-kubernetes-validations, as the apiserver reads it. */
export interface CelRule {
  /** CEL expression; `self` is the value the rule sits on (and `oldSelf` its previous value on update). */
  rule: string;
  /** Said when the rule fails, unless messageExpression gives a message. */
  message: string;
  /** CEL giving the message from `self`; its Rule has the same in TypeScript (messageOf). */
  messageExpression?: string;
  reason?: CelReason;
  /** Where the apiserver reports a failure, relative to the value, e.g. `.limits.cpu`. */
  fieldPath?: string;
}

/** A CEL rule together with the same predicate in TypeScript (true = valid). */
export interface Rule<T> extends CelRule {
  check(self: T): boolean;
  /** The messageExpression in TypeScript. */
  messageOf?(self: T): string;
}

/** A transition rule (uses oldSelf); zod cannot see the old object, so callers run `check` on update. */
export interface TransitionRule<T> extends CelRule {
  check(self: T, oldSelf: T): boolean;
}

const VALIDATIONS = 'x-kubernetes-validations';

function celRules(schema: z.ZodType): CelRule[] {
  return (schema.meta()?.[VALIDATIONS] as CelRule[] | undefined) ?? [];
}

function celEntry({ rule, message, messageExpression, reason, fieldPath }: CelRule): CelRule {
  return {
    rule,
    message,
    ...(messageExpression ? { messageExpression } : {}),
    ...(reason ? { reason } : {}),
    ...(fieldPath ? { fieldPath } : {}),
  };
}

/** The apiserver's choice: messageExpression's result, unless it is blank or spans lines; then message. */
function failureMessage<T>(r: Rule<T>, value: T): string {
  const m = r.messageOf?.(value);
  return m !== undefined && m.trim() !== '' && !/[\r\n]/.test(m) ? m : r.message;
}

/** `.limits.cpu` -> ['limits', 'cpu'] (only the dotted form is used in this package). */
function issuePath(fieldPath: string | undefined): string[] {
  return fieldPath ? fieldPath.split('.').filter((p) => p !== '') : [];
}

/** Adds x-kubernetes-validations to the schema's metadata, keeping what was there. */
function addCel<S extends z.ZodType>(original: z.ZodType, target: S, rules: CelRule[]): S {
  // A refinement clones the schema without its metadata, so carry the original's over explicitly.
  return target.meta({
    ...(original.meta() ?? {}),
    [VALIDATIONS]: [...celRules(original), ...rules.map(celEntry)],
  });
}

/** Attaches rules that both zod and the apiserver enforce. */
export function withRules<S extends z.ZodType>(schema: S, ...rules: Rule<z.output<S>>[]): S {
  const refined = schema.superRefine((value, ctx) => {
    for (const r of rules) {
      if (!r.check(value))
        ctx.addIssue({
          code: 'custom',
          message: failureMessage(r, value),
          path: issuePath(r.fieldPath),
          input: value,
        });
    }
  });
  return addCel(schema, refined, rules);
}

/** Attaches transition rules (CEL with oldSelf); `transitionErrors` runs the TypeScript side. */
export function withTransitionRules<S extends z.ZodType>(schema: S, rules: TransitionRule<z.output<S>>[]): S {
  return addCel(schema, schema.clone(), rules);
}

/** Messages of the transition rules that the update from oldSelf to self breaks. */
export function transitionErrors<T>(rules: TransitionRule<T>[], self: T, oldSelf: T): string[] {
  return rules.filter((r) => !r.check(self, oldSelf)).map((r) => r.message);
}

/** The equality CEL's `==` applies to JSON values: deep, map keys unordered, lists ordered. */
export function celEqual(a: unknown, b: unknown): boolean {
  return isDeepStrictEqual(a, b);
}

/**
 * A list whose items are identified by key fields (x-kubernetes-list-type: map): the apiserver refuses
 * duplicate keys and server-side apply merges items by key. Key fields must be required or defaulted.
 */
export function listMap<T extends z.ZodObject>(
  item: T,
  keys: (keyof z.output<T> & string)[],
  maxItems: number,
) {
  return z
    .array(item)
    .max(maxItems)
    .superRefine((items, ctx) => {
      const seen = new Set<string>();
      items.forEach((it, i) => {
        const id = JSON.stringify(keys.map((k) => it[k]));
        if (seen.has(id)) {
          const key = keys.map((k) => `${k}=${String(it[k])}`).join(',');
          ctx.addIssue({ code: 'custom', message: `Duplicate value: ${key}`, path: [i], input: it });
        }
        seen.add(id);
      });
    })
    .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': keys });
}

/** A string-keyed map with at most maxProperties entries (values validated by `value`). */
export function boundedMap<V extends z.ZodType>(value: V, maxProperties: number) {
  return z
    .record(z.string(), value)
    .refine((m) => Object.keys(m).length <= maxProperties, `must have at most ${maxProperties} entries`)
    .meta({ maxProperties });
}

const INT32_MAX = 2147483647;

/** An integer the apiserver stores as int32 (counts, ports, seconds). */
export function int32(min: number, max = INT32_MAX) {
  return z.int().min(min).max(max);
}

/** A non-negative int64 (generations, byte sizes); JavaScript caps it at Number.MAX_SAFE_INTEGER. */
export function int64() {
  return z.int().min(0);
}
