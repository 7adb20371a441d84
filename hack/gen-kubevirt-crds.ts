// Generates test/fixtures/crds/kubevirt.yaml: CRDs for the KubeVirt and CDI kinds the operator
// touches, with OpenAPI v3 schemas derived from the KubeVirt 1.7 TypeScript types
// (@kubevirt-ui-ext/kubevirt-api, generated from KubeVirt's own OpenAPI). The TypeScript compiler
// walks the interfaces: properties, primitives, arrays, maps (index signatures), string-literal
// enums, required (non-optional) fields and doc comments. Test clusters install these CRDs so
// that a misspelled field (spec.sendTo.connectUrl) is rejected under fieldValidation=Strict and
// pruned otherwise, exactly as on a real KubeVirt cluster.
//
// Run: npm run gen:kubevirt-crds   (test/unit/kubevirt-crds.test.ts checks the file is current)
import yaml from 'js-yaml';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const pkgDir = join(repoRoot, 'node_modules/@kubevirt-ui-ext/kubevirt-api');
export const kubevirtCrdsPath = join(repoRoot, 'test/fixtures/crds/kubevirt.yaml');

/** Object nesting below which schemas stop and keep whatever they are given. */
const MAX_DEPTH = 14;

export interface JSONSchemaProps {
  type?: 'object' | 'array' | 'string' | 'number' | 'integer' | 'boolean';
  description?: string;
  properties?: Record<string, JSONSchemaProps>;
  required?: string[];
  items?: JSONSchemaProps;
  additionalProperties?: JSONSchemaProps;
  enum?: string[];
  anyOf?: JSONSchemaProps[];
  'x-kubernetes-preserve-unknown-fields'?: true;
  'x-kubernetes-int-or-string'?: true;
}

interface KindSpec {
  source: 'kubevirt' | 'containerized-data-importer';
  rootInterface: string;
  group: string;
  version: string;
  kind: string;
  plural: string;
  shortNames: string[];
  categories?: string[];
  phaseColumn?: string;
}

const KINDS: KindSpec[] = [
  {
    source: 'kubevirt', rootInterface: 'V1VirtualMachine', group: 'kubevirt.io', version: 'v1',
    kind: 'VirtualMachine', plural: 'virtualmachines', shortNames: ['vm', 'vms'], categories: ['all'],
    phaseColumn: '.status.printableStatus',
  },
  {
    source: 'kubevirt', rootInterface: 'V1VirtualMachineInstance', group: 'kubevirt.io', version: 'v1',
    kind: 'VirtualMachineInstance', plural: 'virtualmachineinstances', shortNames: ['vmi', 'vmis'], categories: ['all'],
    phaseColumn: '.status.phase',
  },
  {
    source: 'kubevirt', rootInterface: 'V1VirtualMachineInstanceMigration', group: 'kubevirt.io', version: 'v1',
    kind: 'VirtualMachineInstanceMigration', plural: 'virtualmachineinstancemigrations', shortNames: ['vmim', 'vmims'],
    categories: ['all'], phaseColumn: '.status.phase',
  },
  {
    source: 'kubevirt', rootInterface: 'V1KubeVirt', group: 'kubevirt.io', version: 'v1',
    kind: 'KubeVirt', plural: 'kubevirts', shortNames: ['kv', 'kvs'], phaseColumn: '.status.phase',
  },
  {
    source: 'containerized-data-importer', rootInterface: 'V1beta1DataVolume', group: 'cdi.kubevirt.io', version: 'v1beta1',
    kind: 'DataVolume', plural: 'datavolumes', shortNames: ['dv', 'dvs'], categories: ['all'], phaseColumn: '.status.phase',
  },
];

const intOrString = (description?: string): JSONSchemaProps => ({
  ...(description ? { description } : {}),
  anyOf: [{ type: 'integer' }, { type: 'string' }],
  'x-kubernetes-int-or-string': true,
});

const preserve = (description?: string): JSONSchemaProps => ({
  ...(description ? { description } : {}),
  type: 'object',
  'x-kubernetes-preserve-unknown-fields': true,
});

/**
 * The generated types render Quantity and IntOrString as `string` and keep the Go type's doc as
 * the field's doc; the apiserver must accept numbers there too (`memory: 1024`, `port: 8080`).
 */
function isIntOrStringDoc(doc: string): boolean {
  return /^(Quantity is a fixed-point|IntOrString is a type)/.test(doc);
}

/** ResourceList maps (map[ResourceName]Quantity) flattened to `{[key: string]: string}`. */
const RESOURCE_LIST_PROPS = new Set(['limits', 'requests', 'capacity', 'allocatable']);

/**
 * Fields the OpenAPI→TypeScript generator dropped (Kubernetes IntOrString `port` of probe
 * actions). Without them a VMI with an HTTP or TCP readiness probe would lose its port.
 */
const MISSING_PROPERTIES: Record<string, { name: string; required: boolean; schema: JSONSchemaProps }[]> = {
  K8sIoApiCoreV1HTTPGetAction: [{ name: 'port', required: true, schema: intOrString('Name or number of the port to access on the container. Number must be in the range 1 to 65535. Name must be an IANA_SVC_NAME.') }],
  K8sIoApiCoreV1TCPSocketAction: [{ name: 'port', required: true, schema: intOrString('Number or name of the port to access on the container. Number must be in the range 1 to 65535. Name must be an IANA_SVC_NAME.') }],
};

/**
 * The TypeScript generator renames a few JSON fields: reserved words get a leading `_`
 * (`_configuration`, `_default`) and leading acronyms are lower-cased (`vSOCKCID`, `hTTPProxy`).
 * Undo that, and prove each rename against the package's own FromJSON code
 * (`_default: i(e,"default") ? …`), so a wrong guess fails generation instead of a test.
 */
function jsonName(tsName: string, runtimeJs: string): string {
  let json = tsName;
  if (tsName.startsWith('_')) json = tsName.slice(1);
  else if (/^[a-z][A-Z]{2}/.test(tsName)) json = tsName[0].toUpperCase() + tsName.slice(1);
  if (json !== tsName && !runtimeJs.includes(`${tsName}:i(e,"${json}")`) && !runtimeJs.includes(`${tsName}:e.${json}`)) {
    throw new Error(`cannot confirm that TypeScript property ${tsName} is JSON field ${json}`);
  }
  return json;
}

function docOf(symbol: ts.Symbol, checker: ts.TypeChecker): string {
  return ts.displayPartsToString(symbol.getDocumentationComment(checker)).trim();
}

class SchemaWalker {
  private readonly checker: ts.TypeChecker;
  /** The package's compiled JS for the file being walked (holds the JSON field mappings). */
  private readonly runtimeJs: string;

  constructor(checker: ts.TypeChecker, runtimeJs: string) {
    this.checker = checker;
    this.runtimeJs = runtimeJs;
  }

  /** Schema of an interface type; `stack` holds the interfaces above it, to cut cycles. */
  private objectSchema(type: ts.Type, name: string, stack: string[], description: string): JSONSchemaProps {
    if (stack.includes(name) || stack.length >= MAX_DEPTH) return preserve(description);
    // Embedded ObjectMeta (templates): the apiserver only handles the root one; keep it whole.
    if (/ObjectMeta$/.test(name) && stack.length > 0) return preserve(description);
    const properties: Record<string, JSONSchemaProps> = {};
    const required: string[] = [];
    for (const prop of this.checker.getPropertiesOfType(type)) {
      const decl = prop.valueDeclaration ?? prop.declarations?.[0];
      if (!decl) continue;
      const propType = this.checker.getTypeOfSymbolAtLocation(prop, decl);
      const doc = docOf(prop, this.checker);
      const field = jsonName(prop.name, this.runtimeJs);
      properties[field] = this.propertySchema(field, propType, doc, [...stack, name]);
      if (!(prop.flags & ts.SymbolFlags.Optional)) required.push(field);
    }
    for (const extra of MISSING_PROPERTIES[name] ?? []) {
      properties[extra.name] = extra.schema;
      if (extra.required) required.push(extra.name);
    }
    const sorted = Object.fromEntries(Object.entries(properties).sort(([a], [b]) => a.localeCompare(b)));
    return {
      ...(description ? { description } : {}),
      type: 'object',
      ...(Object.keys(sorted).length ? { properties: sorted } : { 'x-kubernetes-preserve-unknown-fields': true as const }),
      ...(required.length ? { required: required.sort() } : {}),
    };
  }

  private propertySchema(propName: string, type: ts.Type, doc: string, stack: string[]): JSONSchemaProps {
    const schema = this.typeSchema(type, doc, stack);
    if (schema.type === 'string' && isIntOrStringDoc(doc)) return intOrString(doc);
    if (RESOURCE_LIST_PROPS.has(propName) && schema.additionalProperties?.type === 'string') {
      return { ...schema, additionalProperties: intOrString() };
    }
    return schema;
  }

  typeSchema(type: ts.Type, description: string, stack: string[]): JSONSchemaProps {
    const desc = description ? { description } : {};
    const c = this.checker;
    if (type.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown | ts.TypeFlags.NonPrimitive)) return preserve(description);
    if (type.flags & ts.TypeFlags.String) return { ...desc, type: 'string' };
    if (type.flags & ts.TypeFlags.Number) return { ...desc, type: 'number' };
    if (type.flags & ts.TypeFlags.Boolean) return { ...desc, type: 'boolean' };
    if (type.isUnion()) {
      const members = type.types.filter((t) => !(t.flags & (ts.TypeFlags.Undefined | ts.TypeFlags.Null)));
      if (members.length && members.every((t) => t.isStringLiteral())) {
        return { ...desc, type: 'string', enum: members.map((t) => (t as ts.StringLiteralType).value) };
      }
      if (members.length === 1) return this.typeSchema(members[0], description, stack);
      if (members.every((t) => t.flags & ts.TypeFlags.BooleanLiteral)) return { ...desc, type: 'boolean' };
      throw new Error(`unsupported union type ${c.typeToString(type)} under ${stack.join('.')}`);
    }
    if (c.isArrayType(type)) {
      const [elem] = c.getTypeArguments(type as ts.TypeReference);
      return { ...desc, type: 'array', items: this.typeSchema(elem, '', stack) };
    }
    const symbol = type.getSymbol() ?? type.aliasSymbol;
    const props = c.getPropertiesOfType(type);
    const indexValue = type.getStringIndexType();
    if (indexValue && props.length === 0) {
      return { ...desc, type: 'object', additionalProperties: this.typeSchema(indexValue, '', stack) };
    }
    if (type.flags & ts.TypeFlags.Object && symbol && symbol.flags & ts.SymbolFlags.Interface) {
      return this.objectSchema(type, symbol.getName(), stack, description);
    }
    throw new Error(`unsupported type ${c.typeToString(type)} under ${stack.join('.')}`);
  }

  rootSchema(type: ts.Type, name: string): JSONSchemaProps {
    const schema = this.objectSchema(type, name, [], '');
    // The apiserver owns the root metadata (and rejects CRD schemas that constrain it).
    if (schema.properties?.metadata) schema.properties.metadata = { type: 'object' };
    return schema;
  }
}

function loadProgram(): { checker: ts.TypeChecker; files: Record<KindSpec['source'], ts.SourceFile> } {
  const paths = {
    kubevirt: join(pkgDir, 'dist/kubevirt/index.d.ts'),
    'containerized-data-importer': join(pkgDir, 'dist/containerized-data-importer/index.d.ts'),
  };
  const program = ts.createProgram(Object.values(paths), {
    noEmit: true, skipLibCheck: true, noResolve: true, types: [], lib: ['lib.es2020.d.ts', 'lib.dom.d.ts'],
  });
  const files = {} as Record<KindSpec['source'], ts.SourceFile>;
  for (const [k, p] of Object.entries(paths) as [KindSpec['source'], string][]) {
    const sf = program.getSourceFile(p);
    if (!sf) throw new Error(`cannot read ${p}: is @kubevirt-ui-ext/kubevirt-api installed (npm ci)?`);
    files[k] = sf;
  }
  return { checker: program.getTypeChecker(), files };
}

function findInterface(sf: ts.SourceFile, name: string): ts.InterfaceDeclaration {
  const found = sf.statements.find((s): s is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(s) && s.name.text === name);
  if (!found) throw new Error(`interface ${name} not found in ${sf.fileName}`);
  return found;
}

function crdFor(k: KindSpec, schema: JSONSchemaProps): Record<string, unknown> {
  const columns = [
    ...(k.phaseColumn ? [{ name: 'Phase', type: 'string', jsonPath: k.phaseColumn }] : []),
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ];
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${k.plural}.${k.group}`, labels: { 'app.kubernetes.io/part-of': 'cloudnet-test-fixtures' } },
    spec: {
      group: k.group,
      names: {
        kind: k.kind,
        listKind: `${k.kind}List`,
        plural: k.plural,
        singular: k.kind.toLowerCase(),
        shortNames: k.shortNames,
        ...(k.categories ? { categories: k.categories } : {}),
      },
      scope: 'Namespaced',
      versions: [{
        name: k.version,
        served: true,
        storage: true,
        subresources: { status: {} },
        additionalPrinterColumns: columns,
        schema: { openAPIV3Schema: schema },
      }],
    },
  };
}

export function generateKubevirtCrdsYaml(): string {
  const { checker, files } = loadProgram();
  const runtimeJs = {
    kubevirt: readFileSync(join(pkgDir, 'dist/kubevirt/index.js'), 'utf8'),
    'containerized-data-importer': readFileSync(join(pkgDir, 'dist/containerized-data-importer/index.js'), 'utf8'),
  };
  const pkgVersion = (JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { version: string }).version;
  const docs = KINDS.map((k) => {
    const decl = findInterface(files[k.source], k.rootInterface);
    const walker = new SchemaWalker(checker, runtimeJs[k.source]);
    const schema = walker.rootSchema(checker.getTypeAtLocation(decl.name), k.rootInterface);
    return yaml.dump(crdFor(k, schema), { lineWidth: -1, noRefs: true, sortKeys: false });
  });
  const header = [
    `# GENERATED by hack/gen-kubevirt-crds.ts from @kubevirt-ui-ext/kubevirt-api ${pkgVersion} (KubeVirt 1.7 types).`,
    '# Do not edit: run `npm run gen:kubevirt-crds`. Test fixtures only: KubeVirt and CDI install their own CRDs.',
  ].join('\n');
  return `${header}\n---\n${docs.join('---\n')}`;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const text = generateKubevirtCrdsYaml();
  mkdirSync(dirname(kubevirtCrdsPath), { recursive: true });
  writeFileSync(kubevirtCrdsPath, text);
  console.log(`wrote ${kubevirtCrdsPath} (${(text.length / 1024).toFixed(0)} KiB)`);
}
