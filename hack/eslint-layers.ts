// The layering rule of eslint.config.js (issue 17, /work/shared/architecture/layers.json): which
// folders of src/ may import which. ESLint's own no-restricted-imports matches the specifier text
// only, so `../controller/x.ts` means different folders at different depths, and it does not see
// `await import('../kube/client.ts')` or the type form `import('../kube/rest.ts').KubeObject`.
// This rule resolves every relative (or absolute) specifier against the importing file and
// compares folders; package specifiers (`node:fs`, `@kubernetes/client-node`) are never ours.
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import type { ESLint, Rule } from 'eslint';

export interface LayerOptions {
  /** Repo-relative folders this file must not import from, each with the reason shown in the report. */
  forbid?: Record<string, string>;
  /** When set, every import of our own code must stay inside these repo-relative folders. */
  confine?: { to: string[]; why: string };
}

/** A node whose string literal names a module: import/export declarations, import(), TS forms. */
type SourceNode = { value?: unknown } | null | undefined;

function isOurs(specifier: string): boolean {
  return specifier.startsWith('.') || isAbsolute(specifier);
}

function inside(path: string, folder: string): boolean {
  return path === folder || path.startsWith(folder + sep);
}

export function layersPlugin(root: string): ESLint.Plugin {
  const rule: Rule.RuleModule = {
    meta: {
      type: 'problem',
      docs: { description: 'Keeps imports between src/ folders pointing the way the architecture allows' },
      schema: [{
        type: 'object',
        additionalProperties: false,
        properties: {
          forbid: { type: 'object', additionalProperties: { type: 'string' } },
          confine: {
            type: 'object',
            additionalProperties: false,
            required: ['to', 'why'],
            properties: { to: { type: 'array', items: { type: 'string' } }, why: { type: 'string' } },
          },
        },
      }],
      messages: {
        forbidden: '{{from}} must not import {{to}} ({{target}}): {{why}}',
        confined: '{{from}} imports nothing outside {{allowed}}, but this imports {{target}}: {{why}}',
      },
    },
    create(context) {
      const opts = (context.options[0] ?? {}) as LayerOptions;
      const file = context.filename;
      const from = relative(root, file);
      const forbid = Object.entries(opts.forbid ?? {}).map(([folder, why]) => ({ folder, abs: resolve(root, folder), why }));
      const confine = opts.confine ? { ...opts.confine, abs: opts.confine.to.map((f) => resolve(root, f)) } : undefined;

      const check = (node: Rule.Node, source: SourceNode): void => {
        const specifier = source?.value;
        if (typeof specifier !== 'string' || !isOurs(specifier)) return;
        const target = resolve(dirname(file), specifier);
        const shown = relative(root, target);
        if (confine && !confine.abs.some((f) => inside(target, f))) {
          context.report({ node, messageId: 'confined', data: { from, allowed: confine.to.join(', '), target: shown, why: confine.why } });
          return;
        }
        const hit = forbid.find((f) => inside(target, f.abs));
        if (hit) context.report({ node, messageId: 'forbidden', data: { from, to: hit.folder, target: shown, why: hit.why } });
      };

      // typescript-eslint nodes (TSImportType, TSExternalModuleReference) are not in ESLint's
      // ESTree types, hence the loose shape read through SourceNode.
      type TsNode = Rule.Node & { source?: SourceNode; expression?: SourceNode };
      return {
        ImportDeclaration: (node) => check(node, node.source),
        ExportNamedDeclaration: (node) => check(node, node.source),
        ExportAllDeclaration: (node) => check(node, node.source),
        ImportExpression: (node) => check(node, node.source as SourceNode),
        TSImportType: (node: TsNode) => check(node, node.source),
        TSExternalModuleReference: (node: TsNode) => check(node, node.expression),
      } as Rule.RuleListener;
    },
  };
  return { meta: { name: 'cloudnet-layers' }, rules: { layers: rule } };
}
