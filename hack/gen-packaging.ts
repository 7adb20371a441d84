// Regenerates the plain manifests under config/ (rbac, manager, default) from charts/cloudnet and
// the argocd-cm patch from config/argocd/health.lua, so each has one source of truth.
//   node hack/gen-packaging.ts          write the files
//   node hack/gen-packaging.ts --check  exit 1 if any file is stale (test/unit/chart.test.ts does the same)
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { renderAll, repoRoot } from './packaging.ts';

function current(path: string): string | undefined {
  try { return readFileSync(join(repoRoot, path), 'utf8'); } catch { return undefined; }
}

const check = process.argv.includes('--check');
const stale: string[] = [];
for (const [path, content] of renderAll()) {
  if (current(path) === content) continue;
  stale.push(path);
  if (!check) {
    mkdirSync(dirname(join(repoRoot, path)), { recursive: true });
    writeFileSync(join(repoRoot, path), content);
  }
}
if (check && stale.length) {
  console.error(`stale generated files (run node hack/gen-packaging.ts):\n  ${stale.join('\n  ')}`);
  process.exitCode = 1;
} else {
  console.log(stale.length ? `wrote ${stale.join(', ')}` : 'packaging files up to date');
}
