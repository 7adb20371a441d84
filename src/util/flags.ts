// Numeric command-line flags, checked where they are parsed: a mistyped value is an error that
// names the flag, before anything starts, never NaN or a negative size deep inside a component.

export interface NumberRule {
  /** Smallest accepted value (inclusive). */
  min: number;
  /** Largest accepted value (inclusive). */
  max?: number;
  integer?: boolean;
  /** What the number counts, for the message: "MiB", "seconds", "passes"... */
  unit: string;
}

/** `value` as a number within `rule`, `fallback` when the flag is absent; throws naming the flag. */
export function numberFlag(name: string, value: string | undefined, fallback: number, rule: NumberRule): number;
export function numberFlag(name: string, value: string | undefined, fallback: undefined, rule: NumberRule): number | undefined;
export function numberFlag(name: string, value: string | undefined, fallback: number | undefined, rule: NumberRule): number | undefined;
export function numberFlag(name: string, value: string | undefined, fallback: number | undefined, rule: NumberRule): number | undefined {
  if (value === undefined) return fallback;
  const n = Number(value);
  const ok = value.trim() !== '' && Number.isFinite(n) && n >= rule.min && (rule.max === undefined || n <= rule.max) && (!rule.integer || Number.isInteger(n));
  if (!ok) {
    const range = rule.max === undefined ? `at least ${rule.min}` : `from ${rule.min} to ${rule.max}`;
    throw new Error(`--${name} ${value}: ${rule.integer ? 'a whole number' : 'a number'} of ${rule.unit}, ${range}`);
  }
  return n;
}

/** A size flag given in MiB (`min`/`max` in MiB), as whole bytes; `fallbackMiB` when absent. */
export function mibFlag(name: string, value: string | undefined, fallbackMiB: number, rule: Omit<NumberRule, 'unit'>): number;
export function mibFlag(name: string, value: string | undefined, fallbackMiB: undefined, rule: Omit<NumberRule, 'unit'>): number | undefined;
export function mibFlag(name: string, value: string | undefined, fallbackMiB: number | undefined, rule: Omit<NumberRule, 'unit'>): number | undefined {
  const mib = numberFlag(name, value, fallbackMiB, { ...rule, unit: 'MiB' });
  return mib === undefined ? undefined : Math.round(mib * (1 << 20));
}
