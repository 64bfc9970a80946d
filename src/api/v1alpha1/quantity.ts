// Kubernetes resource quantities ("500m", "1.5Gi", 2): the grammar, and comparison done the way the
// apiserver's resource.Quantity does it (values round up to 1n and are capped at 2^63-1), so that a zod
// check and the CEL `quantity(...).compareTo(...)` give the same answer.

/**
 * Kubernetes' quantity grammar without a sign (resources are never negative) and with an integer exponent
 * of at most three digits (Kubernetes' own pattern lets through exponents its parser then rejects).
 */
export const QUANTITY_PATTERN =
  '^(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?[0-9]{1,3}))?$';
const QUANTITY_RE = new RegExp(QUANTITY_PATTERN);

const DECIMAL_SUFFIX: Record<string, number> = {
  n: -9,
  u: -6,
  m: -3,
  '': 0,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18,
};
const BINARY_SUFFIX: Record<string, number> = { Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60 };

const NANOS_PER_UNIT = 10n ** 9n;
const MAX_NANOS = (2n ** 63n - 1n) * NANOS_PER_UNIT;

export function isQuantity(value: number | string): boolean {
  return typeof value === 'number' ? Number.isInteger(value) && value >= 0 : QUANTITY_RE.test(value);
}

/** The quantity in nano-units, rounded up and capped as the apiserver does; throws if it does not parse. */
export function quantityNanos(value: number | string): bigint {
  if (typeof value === 'number') return clamp(BigInt(value) * NANOS_PER_UNIT);
  const m = QUANTITY_RE.exec(value);
  if (!m) throw new Error(`not a quantity: ${value}`);
  const number = m[1] ?? '';
  const suffix = m[5] ?? '';
  const [whole = '', frac = ''] = number.split('.');
  let num = BigInt((whole || '0') + frac);
  let den = 10n ** BigInt(frac.length);
  const binary = BINARY_SUFFIX[suffix];
  if (binary !== undefined) {
    num *= 2n ** BigInt(binary);
  } else {
    const exp = DECIMAL_SUFFIX[suffix] ?? Number(suffix.slice(1));
    if (exp >= 0) num *= 10n ** BigInt(exp);
    else den *= 10n ** BigInt(-exp);
  }
  const scaled = num * NANOS_PER_UNIT;
  return clamp(scaled / den + (scaled % den === 0n ? 0n : 1n));
}

function clamp(nanos: bigint): bigint {
  return nanos > MAX_NANOS ? MAX_NANOS : nanos;
}

/** Negative, zero or positive as a is less than, equal to or greater than b. */
export function compareQuantities(a: number | string, b: number | string): number {
  const d = quantityNanos(a) - quantityNanos(b);
  return d < 0n ? -1 : d > 0n ? 1 : 0;
}
