// Writes the TypeScript interfaces of the API (src/api/generated/) from the schemas in
// src/api/schema/, their one source; see hack/api-types.ts for the mapping.
//   node hack/gen-api-types.ts          write the files
//   node hack/gen-api-types.ts --check  exit 1 if any file is stale (test/unit/api/api-source.test.ts does the same)
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderApiTypes } from './api-types.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function current(path: string): string | undefined {
  try { return readFileSync(join(repoRoot, path), 'utf8'); } catch { return undefined; }
}

const check = process.argv.includes('--check');
const stale: string[] = [];
for (const [path, content] of renderApiTypes()) {
  if (current(path) === content) continue;
  stale.push(path);
  if (!check) {
    mkdirSync(dirname(join(repoRoot, path)), { recursive: true });
    writeFileSync(join(repoRoot, path), content);
  }
}
if (check && stale.length) {
  console.error(`stale generated files (run npm run gen:api-types):\n  ${stale.join('\n  ')}`);
  process.exitCode = 1;
} else {
  console.log(stale.length ? `wrote ${stale.join(', ')}` : 'API types up to date');
}
