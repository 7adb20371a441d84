// Asking a real API server what an identity may do, three ways that must agree:
//  - SelfSubjectAccessReview sent with the identity's own credentials (its ServiceAccount token);
//  - `kubectl auth can-i --as=<user> --as-group=...` (impersonation by the admin);
//  - SubjectAccessReview by the admin about the user.
// Reviews are sent as one List per kubectl call, so a matrix costs one process, not one each.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import yaml from 'js-yaml';
import type { Cluster } from '../env/cluster.ts';
import { cachedTool } from '../../hack/packaging.ts';

export interface Run { status: number; stdout: string; stderr: string }

/** kubectl with its own HOME and cache under `work`; `kubeconfig` defaults to the admin's. */
export function kubectlIn(cluster: Cluster, work: string) {
  const run = (args: string[], kubeconfig = cluster.kubeconfigPath, input?: string): Run => {
    const r = spawnSync(cachedTool('kubectl'), ['--kubeconfig', kubeconfig, '--cache-dir', join(work, 'kube-cache'), ...args], {
      encoding: 'utf8', input, timeout: 60_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: work },
    });
    if (r.error) throw r.error;
    return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  };
  const ok = (args: string[], kubeconfig?: string, input?: string): string => {
    const r = run(args, kubeconfig, input);
    assert.equal(r.status, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  return { run, ok };
}
export type Kubectl = ReturnType<typeof kubectlIn>;

/** One access question: verb on group/resource[/sub][/name] in a namespace ('' = all namespaces / cluster scope). */
export interface Access { verb: string; group: string; resource: string; ns: string; sub?: string; name?: string }

export const q = (verb: string, group: string, resource: string, ns = '', more: { sub?: string; name?: string } = {}): Access =>
  ({ verb, group, resource, ns, ...more });

export function describeAccess(a: Access): string {
  const res = `${a.group ? `${a.resource}.${a.group}` : a.resource}${a.sub ? `/${a.sub}` : ''}${a.name ? ` "${a.name}"` : ''}`;
  return `${a.verb} ${res} in ${a.ns || 'all namespaces'}`;
}

function attributes(a: Access) {
  return { verb: a.verb, group: a.group, resource: a.resource, namespace: a.ns, ...(a.sub ? { subresource: a.sub } : {}), ...(a.name ? { name: a.name } : {}) };
}

/** Sends the reviews as one List and returns status.allowed of each, in order. */
function send(k: Kubectl, items: object[], kubeconfig?: string): boolean[] {
  const out = k.ok(['create', '-f', '-', '-o', 'jsonpath={.status.allowed}{"\\n"}'], kubeconfig, JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
  const answers = out.split('\n').filter(Boolean);
  assert.equal(answers.length, items.length, out);
  return answers.map((a) => a === 'true');
}

/** SubjectAccessReview by the admin about `user` (what the authorizer decides for that user and groups). */
export function reviewAs(k: Kubectl, user: string, groups: string[], questions: Access[]): boolean[] {
  return send(k, questions.map((a) => ({
    apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', spec: { user, groups, resourceAttributes: attributes(a) },
  })));
}

/** SelfSubjectAccessReview with the identity's own kubeconfig: the API server authenticates it first. */
export function selfReview(k: Kubectl, kubeconfig: string, questions: Access[]): boolean[] {
  return send(k, questions.map((a) => ({
    apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec: { resourceAttributes: attributes(a) },
  })), kubeconfig);
}

/** `kubectl auth can-i` impersonating `user` with `groups`. */
export function canIAs(k: Kubectl, user: string, groups: string[], a: Access): boolean {
  const res = `${a.group ? `${a.resource}.${a.group}` : a.resource}${a.name ? `/${a.name}` : ''}`;
  const args = ['auth', 'can-i', a.verb, res, `--as=${user}`, ...groups.map((g) => `--as-group=${g}`)];
  args.push(...(a.ns ? ['-n', a.ns] : ['--all-namespaces']));
  if (a.sub) args.push(`--subresource=${a.sub}`);
  const r = k.run(args);
  const answer = r.stdout.trim();
  assert.ok(answer === 'yes' || answer === 'no', `kubectl ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return answer === 'yes';
}

/** Lists what differs from the expectation, e.g. ["allowed but must not be: get secrets in kube-system"]. */
export function mismatches(questions: Access[], expected: boolean[], answers: boolean[], how: string): string[] {
  return questions.flatMap((a, i) => (answers[i] === expected[i] ? [] : [`${how}: ${answers[i] ? 'allowed but must not be' : 'denied but needed'}: ${describeAccess(a)}`]));
}

/** The ServiceAccount's identity as the API server sees a token for it. */
export function serviceAccountUser(ns: string, name: string): { user: string; groups: string[] } {
  return { user: `system:serviceaccount:${ns}:${name}`, groups: ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'] };
}

/** A TokenRequest token for the ServiceAccount (it must exist), and a kubeconfig that carries only it. */
export function tokenKubeconfig(k: Kubectl, cluster: Cluster, work: string, ns: string, sa: string): { token: string; path: string } {
  const token = k.ok(['-n', ns, 'create', 'token', sa, '--duration=1h']).trim();
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'a JWT');
  const path = join(work, `${ns}-${sa}.token.kubeconfig`);
  writeFileSync(path, yaml.dump({
    apiVersion: 'v1', kind: 'Config',
    clusters: [{ name: cluster.name, cluster: { server: cluster.server, 'certificate-authority-data': Buffer.from(cluster.ca.certPem).toString('base64') } }],
    users: [{ name: sa, user: { token } }],
    contexts: [{ name: sa, context: { cluster: cluster.name, user: sa } }],
    'current-context': sa,
  }), { mode: 0o600 });
  return { token, path };
}
