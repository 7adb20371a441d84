// The layering rule of eslint.config.js, run through ESLint's Node API with the repository's own
// config: each forbidden direction is reported, the allowed ones are not. The snippets are linted
// as if they were files at the given paths (nothing is written), so the rule is proven even where
// the tree does not (yet) contain such an import.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ESLint } from 'eslint';
import { repoRoot } from '../../../hack/packaging.ts';

const eslint = new ESLint({ cwd: repoRoot });

/** The layering messages ESLint reports for `code` placed at repo-relative `file`. */
async function layering(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: join(repoRoot, file) });
  const fatal = result.messages.filter((m) => m.fatal);
  assert.deepEqual(fatal, [], `${file} did not parse`);
  return result.messages.filter((m) => m.ruleId === 'cloudnet/layers').map((m) => m.message);
}

async function assertForbidden(file: string, code: string, target: RegExp): Promise<void> {
  const messages = await layering(file, code);
  assert.equal(messages.length, 1, `${file}: ${code} should be reported once, got ${JSON.stringify(messages)}`);
  assert.match(messages[0], target);
}

async function assertAllowed(file: string, code: string): Promise<void> {
  assert.deepEqual(await layering(file, code), [], `${file}: ${code} should be allowed`);
}

describe('layering rule (eslint.config.js)', () => {
  it('src/api imports nothing of ours: any relative import leaving src/api is reported', async () => {
    await assertForbidden('src/api/x.ts', "import { log } from '../util/log.ts';\nlog;", /imports nothing outside src\/api.*src\/util\/log\.ts/);
    await assertForbidden('src/api/x.ts', "import type { Res } from '../controller/resources.ts';\nexport type R = Res;", /src\/controller/);
    await assertForbidden('src/api/x.ts', "export * from '../relay/cache.ts';", /src\/relay/);
    await assertAllowed('src/api/x.ts', "import type { Site } from './site.ts';\nimport { readFileSync } from 'node:fs';\nexport type S = Site;\nreadFileSync;");
    // Depth does not fool it: a subfolder of src/api may import its parent.
    await assertAllowed('src/api/generated/x.ts', "import type { Site } from '../site.ts';\nexport type S = Site;");
  });

  it('src/kube never imports src/controller or src/operator', async () => {
    await assertForbidden('src/kube/x.ts', "import { Res } from '../controller/resources.ts';\nRes;", /src\/kube\/x\.ts must not import src\/controller/);
    await assertForbidden('src/kube/x.ts', "import { startOperator } from '../operator/main.ts';\nstartOperator;", /must not import src\/operator/);
    // The runtime's own controller.ts is not the src/controller folder.
    await assertAllowed('src/kube/x.ts', "import { Controller } from './controller.ts';\nimport { log } from '../util/log.ts';\nController; log;");
  });

  it('src/controller never imports src/operator', async () => {
    await assertForbidden('src/controller/phases/x.ts', "import type { ControllerDeps } from '../../operator/controllers.ts';\nexport type D = ControllerDeps;", /src\/controller\/phases\/x\.ts must not import src\/operator/);
    await assertAllowed('src/controller/x.ts', "import { KubeClient } from '../kube/client.ts';\nimport type { Site } from '../api/site.ts';\nexport type S = Site;\nKubeClient;");
  });

  it('src/relay never imports src/controller, src/operator or src/kube, at any depth and in any import form', async () => {
    await assertForbidden('src/relay/x.ts', "import type { MigrationRelay } from '../controller/deps.ts';\nexport type M = MigrationRelay;", /must not import src\/controller/);
    await assertForbidden('src/relay/codec/x.ts', "import { Res } from '../../controller/resources.ts';\nRes;", /src\/controller/);
    await assertForbidden('src/relay/x.ts', "export { KubeClient } from '../kube/client.ts';", /must not import src\/kube/);
    await assertForbidden('src/relay/transport/x.ts', "export async function f() { return import('../../kube/rest.ts'); }", /src\/kube/);
    await assertForbidden('src/relay/x.ts', "export type K = import('../kube/rest.ts').KubeObject;", /src\/kube/);
    await assertForbidden('src/relay/x.ts', "import { run } from '../operator/main.ts';\nrun;", /src\/operator/);
    await assertAllowed('src/relay/x.ts', "import { ContentCache } from './cache.ts';\nimport type { WanMigration } from '../api/wanmigration.ts';\nexport type W = WanMigration;\nContentCache;");
    await assertAllowed('src/relay/codec/x.ts', "import { copyBytes } from '../bytes.ts';\nimport { log } from '../../util/log.ts';\ncopyBytes; log;");
  });

  it('src/link and src/storage never import src/controller or src/operator; their other arrows stay open', async () => {
    for (const folder of ['src/link', 'src/storage']) {
      await assertForbidden(`${folder}/x.ts`, "import type { StepReport } from '../controller/phases/observed.ts';\nexport type R = StepReport;", /must not import src\/controller/);
      await assertForbidden(`${folder}/x.ts`, "import type { ControllerDeps } from '../operator/controllers.ts';\nexport type D = ControllerDeps;", /must not import src\/operator/);
      await assertAllowed(`${folder}/x.ts`, "import type { Site } from '../api/site.ts';\nexport type S = Site;");
    }
    await assertAllowed('src/link/x.ts', "import type { KubeClient } from '../kube/client.ts';\nexport type K = KubeClient;");
    await assertAllowed('src/storage/x.ts', "import { ContentCache } from '../relay/cache.ts';\nContentCache;");
  });

  it('binds src/ only: tests and the wiring layers may import anything', async () => {
    await assertAllowed('test/unit/x.ts', "import { Res } from '../../src/controller/resources.ts';\nRes;");
    await assertAllowed('src/operator/x.ts', "import { Res } from '../controller/resources.ts';\nimport { KubeClient } from '../kube/client.ts';\nRes; KubeClient;");
    await assertAllowed('src/x.ts', "import { run } from './operator/main.ts';\nrun;");
  });
});
