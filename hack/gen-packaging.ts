// Regenerates the plain manifests under config/ (rbac, manager, default) from charts/cloudnet and
// the argocd-cm patch from config/argocd/health.lua, so each has one source of truth.
//   node hack/gen-packaging.ts          write the files
//   node hack/gen-packaging.ts --check  exit 1 if any file is stale (test/unit/chart.test.ts does the same)
import { renderAll, repoRoot } from './packaging.ts';
import { syncGenerated } from './generated-files.ts';

syncGenerated(repoRoot, renderAll(), { regenerate: 'node hack/gen-packaging.ts', upToDate: 'packaging files up to date' });
