// metav1.LabelSelector: its schema, matching labels against it, and its string form.
import { z } from 'zod';
import {
  labelMap,
  LABEL_KEY_MAX_LENGTH,
  LABEL_KEY_PATTERN,
  LABEL_VALUE_MESSAGE,
  LABEL_VALUE_PATTERN,
} from './meta.js';
import { withRules } from './rules.js';

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

export type LabelSelector = z.output<typeof LabelSelectorSchema>;
