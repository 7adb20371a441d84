// CustomResourceDefinitions built from the API's one source, the schemas in src/api/schema/:
// hack/gen-crds.ts renders them into crds/ and config/crd/bases/ (the chart reads crds/ through
// its crds-src symlink).
import yaml from 'js-yaml';
import { GROUP, VERSION, type JSONSchemaProps } from './meta.ts';
import { toCRDSchema, type ApiSchema } from './schema/api-schema.ts';
import { SITE_KIND, SITE_PLURAL, siteSpecSchema, siteStatusSchema } from './site.ts';
import { WANMIGRATION_KIND, WANMIGRATION_PLURAL, wanMigrationSpecSchema, wanMigrationStatusSchema } from './wanmigration.ts';

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
  priority?: number;
}

export interface CustomResourceDefinition {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string; labels?: Record<string, string> };
  spec: {
    group: string;
    names: { kind: string; listKind: string; plural: string; singular: string; shortNames?: string[]; categories?: string[] };
    scope: 'Namespaced' | 'Cluster';
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      schema: { openAPIV3Schema: JSONSchemaProps };
      subresources: { status: Record<string, never> };
      additionalPrinterColumns: PrinterColumn[];
    }[];
  };
}

// The standard descriptions of the envelope fields, as controller-gen writes them. metadata gets
// none: the API server rejects a CRD whose root metadata schema says more than its type
// ("must not specify anything other than name and generateName"); kubectl explain documents
// it from ObjectMeta anyway.
const API_VERSION_DESCRIPTION = 'APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources';
const KIND_DESCRIPTION = 'Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds';

function rootSchema(description: string, spec: ApiSchema, status: ApiSchema): JSONSchemaProps {
  return {
    type: 'object',
    description,
    required: ['spec'],
    properties: {
      apiVersion: { type: 'string', description: API_VERSION_DESCRIPTION },
      kind: { type: 'string', description: KIND_DESCRIPTION },
      metadata: { type: 'object' },
      spec: toCRDSchema(spec),
      status: toCRDSchema(status),
    },
  };
}

function crd(kind: string, plural: string, scope: 'Namespaced' | 'Cluster', shortNames: string[], description: string,
  spec: ApiSchema, status: ApiSchema, columns: PrinterColumn[]): CustomResourceDefinition {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${GROUP}`, labels: { 'app.kubernetes.io/part-of': 'cloudnet' } },
    spec: {
      group: GROUP,
      names: { kind, listKind: `${kind}List`, plural, singular: kind.toLowerCase(), shortNames, categories: ['cloudnet'] },
      scope,
      versions: [{
        name: VERSION,
        served: true,
        storage: true,
        schema: { openAPIV3Schema: rootSchema(description, spec, status) },
        subresources: { status: {} },
        additionalPrinterColumns: columns,
      }],
    },
  };
}

const readyColumn: PrinterColumn = { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' };
const ageColumn: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

export function siteCRD(): CustomResourceDefinition {
  return crd(SITE_KIND, SITE_PLURAL, 'Cluster', ['site'], 'Site is a peer cluster that VMs can be live-migrated to over the WAN.',
    siteSpecSchema, siteStatusSchema, [
      readyColumn,
      { name: 'Link', type: 'string', jsonPath: '.status.conditions[?(@.type=="LinkReady")].reason' },
      { name: 'RTT-ms', type: 'number', jsonPath: '.status.rttMs' },
      { name: 'Endpoint', type: 'string', jsonPath: '.spec.gateway.endpoint', priority: 1 },
      ageColumn,
    ]);
}

export function wanMigrationCRD(): CustomResourceDefinition {
  return crd(WANMIGRATION_KIND, WANMIGRATION_PLURAL, 'Namespaced', ['wm', 'wanmig'],
    'WanMigration live-migrates one KubeVirt VirtualMachine to a peer Site over the WAN.',
    wanMigrationSpecSchema, wanMigrationStatusSchema, [
      { name: 'VM', type: 'string', jsonPath: '.spec.vmName' },
      { name: 'Target', type: 'string', jsonPath: '.spec.targetSite' },
      { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
      { name: 'Progress', type: 'integer', jsonPath: '.status.progress.percent', description: 'percent' },
      { name: 'Ratio', type: 'number', jsonPath: '.status.progress.reductionRatio', description: 'WAN bytes / raw bytes' },
      readyColumn,
      { name: 'Reason', type: 'string', jsonPath: '.status.failureReason', priority: 1 },
      ageColumn,
    ]);
}

export function allCRDs(): CustomResourceDefinition[] {
  return [siteCRD(), wanMigrationCRD()];
}

export function crdFileName(c: CustomResourceDefinition): string {
  return `${c.spec.group}_${c.spec.names.plural}.yaml`;
}

const HEADER = '# Generated by hack/gen-crds.ts from src/api/. Do not edit; run `npm run gen:crds`.\n';

export function renderCRD(c: CustomResourceDefinition): string {
  return HEADER + '---\n' + yaml.dump(c, { noRefs: true, lineWidth: -1, quotingType: '"' });
}

/** Relative path (from the repo root) → file content, for every generated CRD file. */
export function renderCRDFiles(): Map<string, string> {
  const out = new Map<string, string>();
  for (const c of allCRDs()) {
    const text = renderCRD(c);
    out.set(`crds/${crdFileName(c)}`, text);
    out.set(`config/crd/bases/${crdFileName(c)}`, text);
  }
  return out;
}
