// typescript-eslint flat config: type-aware rules would double CI time on 2 cores, so the
// recommended (syntactic) set plus a ban on explicit `any` at module boundaries is used.
import tseslint from 'typescript-eslint';
import { layersPlugin } from './hack/eslint-layers.ts';

// The layering of src/ (issue 17; the picture is /work/shared/architecture/layers.json): one
// `files:` block a folder, naming what it must not import and why. test/unit/lint/layers.test.ts
// proves each block on snippets.
const cloudnet = layersPlugin(import.meta.dirname);
const layer = (folder, options) => ({
  files: [`${folder}/**`],
  plugins: { cloudnet },
  rules: { 'cloudnet/layers': ['error', options] },
});
const noWiring = { 'src/operator': 'the data plane knows no process wiring' };
const providers = { 'src/controller': 'providers implement src/api interfaces', ...noWiring };

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', '.cache/**', 'charts/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/explicit-module-boundary-types': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  layer('src/api', { confine: { to: ['src/api'], why: 'types, schemas and provider interfaces depend on nothing of ours' } }),
  layer('src/kube', { forbid: {
    'src/controller': 'the runtime is generic',
    'src/operator': 'the runtime is generic',
  } }),
  layer('src/controller', { forbid: { 'src/operator': 'reconcilers know no process wiring' } }),
  layer('src/relay', { forbid: {
    'src/controller': 'the data plane knows no reconcile loop',
    'src/kube': 'the data plane runs without an API server',
    ...noWiring,
  } }),
  layer('src/link', { forbid: providers }),
  layer('src/storage', { forbid: providers }),
);
