// Pure helpers for metav1.Condition lists (apimachinery's meta.SetStatusCondition semantics):
// lastTransitionTime only moves when the status flips, so watchers can tell "since when".
import type { Condition, ConditionStatus } from './meta.ts';

export interface ConditionInput {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
}

export function findCondition(list: readonly Condition[] | undefined, type: string): Condition | undefined {
  return list?.find((c) => c.type === type);
}

export function isTrue(list: readonly Condition[] | undefined, type: string): boolean {
  return findCondition(list, type)?.status === 'True';
}

/** metav1.Condition's limits (the CRD enforces them: one bad reason and the whole status write fails). */
const REASON = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/;
const REASON_MAX = 1024;
const MESSAGE_MAX = 32768;

/**
 * A reason the API server accepts. Reasons can come from outside our code (a gateway's published
 * state, a relay's or an agent's answer); one that breaks the pattern would make every status
 * write fail with 422, over and over, so it is reduced to its valid characters, or Unknown.
 */
export function validReason(reason: string): string {
  if (REASON.test(reason) && reason.length <= REASON_MAX) return reason;
  const cleaned = reason.replace(/[^A-Za-z0-9_,:]/g, '').replace(/^[^A-Za-z]+/, '').replace(/[,:]+$/, '').slice(0, REASON_MAX);
  return REASON.test(cleaned) ? cleaned : 'Unknown';
}

/** Returns a new list with `input` set; the input list is not modified. */
export function setCondition(list: readonly Condition[] | undefined, input: ConditionInput, generation: number | undefined, now: Date): Condition[] {
  const out = [...(list ?? [])];
  const i = out.findIndex((c) => c.type === input.type);
  const prev = i >= 0 ? out[i] : undefined;
  const next: Condition = {
    type: input.type,
    status: input.status,
    reason: validReason(input.reason),
    message: input.message.length > MESSAGE_MAX ? `${input.message.slice(0, MESSAGE_MAX - 3)}...` : input.message,
    lastTransitionTime: prev && prev.status === input.status ? prev.lastTransitionTime : now.toISOString(),
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
  };
  if (i >= 0) out[i] = next;
  else out.push(next);
  return out;
}

/** Order-insensitive equality of two condition lists, ignoring nothing: used to skip no-op status writes. */
export function sameConditions(a: readonly Condition[] | undefined, b: readonly Condition[] | undefined): boolean {
  const x = [...(a ?? [])].sort((p, q) => p.type.localeCompare(q.type));
  const y = [...(b ?? [])].sort((p, q) => p.type.localeCompare(q.type));
  return JSON.stringify(x) === JSON.stringify(y);
}
