// The one source of the cloudnet.io API. Each field is written once, as an OpenAPI v3 schema node
// with its description; crds.ts renders the nodes into the CRDs (so `kubectl explain` documents
// every field) and hack/gen-api-types.ts renders them into the TypeScript interfaces under
// src/api/generated/. After editing a schema: `npm run gen:api-types && npm run gen:crds`.
import type { JSONSchemaProps } from '../meta.ts';

/** A property: the type demands a description, so no field reaches the CRD undocumented. */
export type ApiField = ApiSchema & { description: string };

/** A JSONSchemaProps node of the source, plus the name of the TypeScript type generated for it. */
export interface ApiSchema extends Omit<JSONSchemaProps, 'properties' | 'items' | 'additionalProperties'> {
  /**
   * Name of the generated TypeScript type (an interface for an object, a union of literals for
   * an enum); without it the type is written inline. Never rendered into a CRD.
   */
  tsName?: string;
  properties?: Record<string, ApiField>;
  items?: ApiSchema;
  additionalProperties?: ApiSchema;
}

/** The CRD form of a source node: the same node without the TypeScript names, key order kept. */
export function toCRDSchema(s: ApiSchema): JSONSchemaProps {
  const out: JSONSchemaProps = {};
  for (const [key, value] of Object.entries(s) as [keyof ApiSchema, unknown][]) {
    if (key === 'tsName') continue;
    if (key === 'properties') {
      out.properties = Object.fromEntries(Object.entries(value as Record<string, ApiSchema>).map(([k, v]) => [k, toCRDSchema(v)]));
    } else if (key === 'items' || key === 'additionalProperties') {
      out[key] = toCRDSchema(value as ApiSchema);
    } else {
      (out as Record<string, unknown>)[key] = value;
    }
  }
  return out;
}

export const DNS1123_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
export const DNS1123_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';

/** CEL rule: the field cannot change once set (the message names it). */
export const immutable = (field: string) => [{ rule: 'self == oldSelf', message: `${field} is immutable` }];
