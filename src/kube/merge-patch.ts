// JSON merge patches (RFC 7386) that also remove. A merge patch leaves every key it does not
// name as it is on the server, so writing a new status as the patch never clears a field the new
// status dropped (a finished phase's deadline, say): the field has to be sent as null.

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The merge patch that turns `before` into `after`: `after` itself, with null for every key of
 * `before` that `after` lacks, at any depth of nested objects (arrays are replaced whole, as a
 * merge patch does anyway). Keys whose value is undefined count as absent, as in JSON.
 */
export function mergePatchFrom(before: unknown, after: unknown): unknown {
  if (!isPlainObject(after)) return after;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(after)) {
    if (v === undefined) continue;
    out[k] = isPlainObject(v) && isPlainObject(before) && isPlainObject(before[k]) ? mergePatchFrom(before[k], v) : v;
  }
  if (isPlainObject(before)) {
    for (const [k, v] of Object.entries(before)) if (v !== undefined && !(k in out)) out[k] = null;
  }
  return out;
}
