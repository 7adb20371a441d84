// Static checks of the Dockerfile. The project's machines cannot pull base images (no container
// registry is reachable), so the image is never built in tests; these checks pin the properties
// the chart relies on: multi-stage on node:24, production dependencies only, a numeric non-root
// user, nothing written at runtime, and an exec-form `node` entrypoint.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot } from '../../hack/packaging.ts';

interface Instruction { op: string; args: string }
interface Stage { from: string; name?: string; body: Instruction[] }

/** Parses a Dockerfile into stages: joins `\` continuations, drops comments, resolves ARGs in FROM. */
function parseDockerfile(text: string): { stages: Stage[]; args: Record<string, string> } {
  const lines = text.replace(/\\\r?\n/g, ' ').split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const line of lines) {
    const m = /^(\S+)\s+(.*)$/.exec(line);
    assert.ok(m, `unparsable Dockerfile line: ${line}`);
    const op = m[1].toUpperCase();
    const rest = m[2].replace(/\s+/g, ' ');
    if (op === 'ARG' && stages.length === 0) {
      const [k, v = ''] = rest.split('=', 2);
      args[k] = v;
    } else if (op === 'FROM') {
      const f = /^(?:--platform=\S+ )?(\S+)(?: AS (\S+))?$/i.exec(rest);
      assert.ok(f, `unparsable FROM: ${rest}`);
      const image = f[1].replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => args[a ?? b ?? ''] ?? '');
      stages.push({ from: image, ...(f[2] ? { name: f[2] } : {}), body: [] });
    } else {
      assert.ok(stages.length, `${op} before the first FROM`);
      stages[stages.length - 1].body.push({ op, args: rest });
    }
  }
  return { stages, args };
}

const dockerfile = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
const { stages } = parseDockerfile(dockerfile);
const final = stages[stages.length - 1];
const ops = (s: Stage, op: string) => s.body.filter((i) => i.op === op).map((i) => i.args);

describe('Dockerfile (static lint; images cannot be pulled here)', () => {
  it('is multi-stage, builds on node:24 and runs on node:24-slim or distroless nodejs24', () => {
    assert.ok(stages.length >= 2, 'multi-stage');
    for (const s of stages.slice(0, -1)) assert.match(s.from, /^node:24(\.|-|$)/, `build stage ${s.name} on node:24`);
    assert.match(final.from, /^(node:24(\.\d+)*-(\w+-)?slim|gcr\.io\/distroless\/nodejs24-debian\d+(:nonroot)?)$/, `runtime base ${final.from}`);
  });

  it('runs as a numeric non-root user', () => {
    const users = ops(final, 'USER');
    assert.ok(users.length > 0, 'runtime stage sets USER');
    const last = users[users.length - 1];
    assert.match(last, /^\d+(:\d+)?$/, 'numeric UID (runAsNonRoot needs one to verify)');
    assert.ok(last.split(':').every((id) => Number(id) > 0), 'not root');
    assert.equal(Number(last.split(':')[0]), 65532, 'UID matches the chart podSecurityContext.runAsUser');
  });

  it('ships production dependencies only', () => {
    const copies = ops(final, 'COPY');
    const nodeModules = copies.filter((c) => /node_modules/.test(c));
    assert.equal(nodeModules.length, 1, 'node_modules copied once');
    const from = /--from=(\S+)/.exec(nodeModules[0])?.[1];
    const depStage = stages.find((s) => s.name === from);
    assert.ok(depStage, `node_modules comes from a named stage (${from})`);
    const installs = ops(depStage, 'RUN').filter((r) => /\bnpm (ci|install|i)\b/.test(r));
    assert.ok(installs.length > 0 && installs.every((r) => /--omit=dev\b/.test(r)), `stage ${from} installs with --omit=dev`);
    assert.ok(!ops(final, 'RUN').some((r) => /\bnpm (ci|install|i)\b/.test(r)), 'no npm install in the runtime stage');
    assert.ok(!copies.some((c) => /^(--\S+ )*(\.|\.\/) /.test(c)), 'runtime stage does not COPY the whole context');
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
    for (const dev of ['node', 'typescript']) assert.ok(dev in pkg.devDependencies && !(dev in pkg.dependencies), `${dev} stays a devDependency`);
  });

  it('imports at runtime only what production dependencies provide', () => {
    // `npm ci --omit=dev` leaves devDependencies out, so a value import of one would crash the
    // image at startup. `import type` is erased (verbatimModuleSyntax), so only it may name them.
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const allowed = new Set([...Object.keys(pkg.dependencies), ...builtinModules]);
    const offenders: string[] = [];
    const files = readdirSync(join(repoRoot, 'src'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    assert.ok(files.length > 0);
    for (const f of files) {
      const code = readFileSync(join(repoRoot, 'src', f), 'utf8');
      const specifiers = [
        ...[...code.matchAll(/^\s*(?:import|export)\s+(?!type\s)(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/gm)].map((m) => m[1]),
        ...[...code.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1]),
      ];
      for (const spec of specifiers) {
        if (spec.startsWith('.') || spec.startsWith('node:')) continue;
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
        if (!allowed.has(name)) offenders.push(`src/${f}: ${spec}`);
      }
    }
    assert.deepEqual(offenders, [], 'value imports of packages that are not production dependencies');
  });

  it('needs no writable root filesystem', () => {
    const env = ops(final, 'ENV').join(' ');
    assert.match(env, /\bHOME=\/tmp\b/);
    assert.match(env, /\bNODE_ENV=production\b/);
    assert.ok(!ops(final, 'VOLUME').length, 'no VOLUME (the chart mounts an emptyDir at /tmp)');
    for (const c of ops(final, 'COPY')) assert.match(c, /--chown=0:0/, `app files owned by root, not the runtime user: ${c}`);
  });

  it('starts node in exec form on the compiled CLI', () => {
    const eps = ops(final, 'ENTRYPOINT');
    assert.equal(eps.length, 1);
    const ep = JSON.parse(eps[0]) as string[];
    assert.equal(ep[0], 'node');
    assert.equal(ep[1], 'dist/cli.js');
    const build = stages.find((s) => ops(s, 'RUN').some((r) => /tsconfig\.build\.json/.test(r)));
    assert.ok(build, 'a stage compiles with tsconfig.build.json');
    assert.ok(ops(final, 'COPY').some((c) => c.includes(`--from=${build.name}`) && c.includes('dist')), 'dist/ comes from the build stage');
    const cmd = JSON.parse(ops(final, 'CMD')[0] ?? '[]') as string[];
    assert.deepEqual(cmd.slice(0, 2), ['operator', '--leader-elect']);
  });

  it('has a gateway target with the WireGuard tools and the same production files', () => {
    const gw = stages.find((s) => s.name === 'gateway');
    assert.ok(gw, 'a stage named gateway');
    assert.notEqual(gw, final, 'the operator stays the default (last) target');
    assert.match(gw.from, /^node:24(\.\d+)*-(\w+-)?slim$/);
    const installs = ops(gw, 'RUN').join(' ');
    for (const pkg of ['wireguard-go', 'wireguard-tools', 'iproute2']) assert.match(installs, new RegExp(`\\b${pkg}\\b`), `installs ${pkg}`);
    assert.match(installs, /rm -rf \/var\/lib\/apt\/lists/, 'drops the apt lists');
    assert.deepEqual(ops(gw, 'COPY'), ops(final, 'COPY'), 'same application files as the operator image');
    assert.deepEqual(ops(gw, 'ENTRYPOINT'), ops(final, 'ENTRYPOINT'));
  });

  it('has a .dockerignore that keeps caches, dependencies and VCS out of the context', () => {
    const ignore = readFileSync(join(repoRoot, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
    for (const p of ['.git', 'node_modules', '.cache', 'dist', 'test']) assert.ok(ignore.includes(p), `.dockerignore lists ${p}`);
    for (const p of ['src', 'package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json']) assert.ok(!ignore.includes(p), `.dockerignore keeps ${p}`);
  });
});
