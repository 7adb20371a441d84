// Writes the TypeScript interfaces of the API (src/api/generated/) from the schemas in
// src/api/schema/, their one source; see hack/api-types.ts for the mapping.
//   node hack/gen-api-types.ts          write the files
//   node hack/gen-api-types.ts --check  exit 1 if any file is stale (test/unit/api/api-source.test.ts does the same)
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderApiTypes } from './api-types.ts';
import { syncGenerated } from './generated-files.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
syncGenerated(repoRoot, renderApiTypes(), { regenerate: 'npm run gen:api-types', upToDate: 'API types up to date' });
