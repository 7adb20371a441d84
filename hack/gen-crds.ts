// Writes the CRDs generated from src/api/ (the schemas in src/api/schema/) into crds/ and
// config/crd/bases/. test/unit/api/crds.test.ts fails when the committed files are stale.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderCRDFiles } from '../src/api/crds.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
for (const [rel, text] of renderCRDFiles()) {
  const path = join(root, rel);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  console.log(`wrote ${rel}`);
}
