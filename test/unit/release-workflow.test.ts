// The release workflow (.github/workflows/release.yml) cannot run here; this checks that it builds
// and pushes what the chart's defaults name: both Dockerfile targets to ghcr.io, and the chart as
// an OCI artifact, from a version tag that must match package.json and Chart.yaml.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { chartDir, repoRoot } from '../../hack/packaging.ts';

interface Step { uses?: string; run?: string; with?: Record<string, unknown> }
interface Workflow { on: { push: { tags: string[] } }; jobs: Record<string, { steps: Step[]; needs?: string; strategy?: { matrix: { include: { target: string; image: string }[] } }; permissions?: Record<string, string> }> }

const wf = yaml.load(readFileSync(join(repoRoot, '.github/workflows/release.yml'), 'utf8')) as Workflow;
const values = yaml.load(readFileSync(join(chartDir, 'values.yaml'), 'utf8')) as { image: { repository: string }; gateway: { image: { repository: string } } };

test('both Dockerfile targets are built and pushed under the names the chart uses', () => {
  assert.deepEqual(wf.on.push.tags, ['v*.*.*']);
  const include = wf.jobs.images.strategy!.matrix.include;
  const dockerfile = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
  for (const { target } of include) assert.match(dockerfile, new RegExp(`^FROM .* AS ${target}$`, 'm'), `Dockerfile target ${target}`);
  const byTarget = Object.fromEntries(include.map((i) => [i.target, i.image]));
  assert.equal(values.image.repository, `ghcr.io/cloudnet-io/${byTarget.runtime}`);
  assert.equal(values.gateway.image.repository, `ghcr.io/cloudnet-io/${byTarget.gateway}`);
  const build = wf.jobs.images.steps.find((s) => s.uses?.startsWith('docker/build-push-action'));
  assert.equal(build?.with?.push, true);
  assert.equal(build?.with?.target, '${{ matrix.target }}');
  assert.equal(wf.jobs.images.permissions?.packages, 'write');
});

test('the chart is linted, packaged with the tag\'s version and pushed as an OCI artifact after the images', () => {
  const chart = wf.jobs.chart;
  assert.equal(chart.needs, 'images');
  const script = chart.steps.map((s) => s.run ?? '').join('\n');
  assert.match(script, /helm lint --strict charts\/cloudnet/);
  assert.match(script, /helm package charts\/cloudnet --version "\$version"/);
  assert.match(script, /helm push .* "oci:\/\/\$REGISTRY\/.*\/charts"/);
  const check = wf.jobs.images.steps.map((s) => s.run ?? '').join('\n');
  assert.match(check, /jq -r \.version package\.json/, 'the tag must match package.json');
});
