// Conditions shaped like metav1.Condition, and status.observedGeneration: every kind's status has both.
import { z } from 'zod';
import { dateTime, DNS_LABEL } from './meta.js';
import { int64, listMap } from './rules.js';

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

export type Condition = z.output<typeof ConditionSchema>;
export type ConditionStatus = Condition['status'];

/**
 * Scheduled=True of a bound Container: reported by its agent with every status it writes, and by
 * the controller only to correct a Scheduled=False it wrote before the binding.
 */
export function scheduledCondition(
  nodeName: string | undefined,
  observedGeneration: number | undefined,
): Omit<Condition, 'lastTransitionTime'> {
  return {
    type: 'Scheduled',
    status: 'True',
    reason: 'Scheduled',
    message: `Assigned to host ${nodeName}`,
    observedGeneration,
  };
}
