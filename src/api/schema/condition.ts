// metav1.Condition as controller-gen emits it (same patterns and limits), with the field
// documentation of apimachinery, shortened. The Condition type is generated from it.
import type { ApiField, ApiSchema } from './api-schema.ts';

export const conditionSchema: ApiSchema = {
  tsName: 'Condition',
  type: 'object',
  description: 'metav1.Condition: one aspect of the current state of this resource.',
  required: ['type', 'status', 'reason', 'message', 'lastTransitionTime'],
  properties: {
    type: {
      type: 'string', maxLength: 316, pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$',
      description: 'Type of the condition in CamelCase, e.g. Ready; at most one condition per type.',
    },
    status: { tsName: 'ConditionStatus', type: 'string', enum: ['True', 'False', 'Unknown'], description: 'Status of the condition: True, False or Unknown.' },
    reason: {
      type: 'string', minLength: 1, maxLength: 1024, pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$',
      description: "Machine-readable CamelCase reason for the condition's last transition (also the reason of the Event emitted with it).",
    },
    message: { type: 'string', maxLength: 32768, description: 'Human-readable details about the last transition.' },
    lastTransitionTime: { type: 'string', format: 'date-time', description: 'When the status last changed (a new reason or message alone does not move it).' },
    observedGeneration: { type: 'integer', minimum: 0, description: 'metadata.generation the condition was set for: older than the current generation means stale.' },
  },
};

/** A condition list keyed by type, as every kstatus-compatible status has it. */
export function conditionsField(description: string): ApiField {
  return {
    type: 'array',
    description,
    items: conditionSchema,
    'x-kubernetes-list-type': 'map',
    'x-kubernetes-list-map-keys': ['type'],
  };
}
