// Counting one client's requests on a real API server through its audit log: the benchmark runs
// kube-apiserver with a policy that records, at Metadata level, every request of one user (the
// operator's own client certificate) and nothing else. Each request is counted once (by auditID),
// at the time the server received it, whatever its stages.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** kube-apiserver flags for an audit log of `user`'s requests, written under `dir`. */
export function auditArgs(dir: string, name: string, user: string): { args: string[]; logPath: string } {
  const policy = join(dir, `${name}-audit-policy.yaml`);
  const logPath = join(dir, `${name}-audit.log`);
  writeFileSync(policy, [
    'apiVersion: audit.k8s.io/v1',
    'kind: Policy',
    'omitStages: [RequestReceived]',
    'rules:',
    `  - level: Metadata`,
    `    users: [${JSON.stringify(user)}]`,
    '  - level: None',
    '',
  ].join('\n'));
  return {
    logPath,
    args: [`--audit-policy-file=${policy}`, `--audit-log-path=${logPath}`, '--audit-log-format=json', '--audit-log-maxsize=0', '--audit-log-maxbackup=0'],
  };
}

export interface AuditedRequest {
  /** ms since the epoch, when the server received it. */
  at: number;
  verb: string;
  resource: string;
  subresource?: string;
  code?: number;
  userAgent?: string;
}

interface AuditEvent {
  auditID: string;
  verb: string;
  user?: { username?: string };
  userAgent?: string;
  objectRef?: { resource?: string; subresource?: string };
  requestURI?: string;
  requestReceivedTimestamp: string;
  responseStatus?: { code?: number };
}

/** The requests of `user` in an audit log, one per auditID. */
export function readAudit(logPath: string, user: string): AuditedRequest[] {
  let text = '';
  try {
    text = readFileSync(logPath, 'utf8');
  } catch {
    return [];
  }
  const seen = new Map<string, AuditedRequest>();
  for (const line of text.split('\n')) {
    if (!line) continue;
    const e = JSON.parse(line) as AuditEvent;
    if (e.user?.username !== user) continue;
    const r: AuditedRequest = {
      at: Date.parse(e.requestReceivedTimestamp),
      verb: e.verb,
      resource: e.objectRef?.resource ?? (e.requestURI?.split('?')[0] ?? ''),
      ...(e.objectRef?.subresource ? { subresource: e.objectRef.subresource } : {}),
      ...(e.responseStatus?.code !== undefined ? { code: e.responseStatus.code } : {}),
      ...(e.userAgent ? { userAgent: e.userAgent } : {}),
    };
    seen.set(e.auditID, { ...seen.get(e.auditID), ...r });
  }
  return [...seen.values()];
}

/** Requests per verb and resource, most first ("patch wanmigrations/status": 1234). */
export function breakdown(reqs: AuditedRequest[]): Record<string, number> {
  const m = new Map<string, number>();
  for (const r of reqs) {
    const k = `${r.verb} ${r.resource}${r.subresource ? `/${r.subresource}` : ''}`;
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  return Object.fromEntries([...m].sort((a, b) => b[1] - a[1]));
}

/** The busiest second: most requests received within one wall-clock second. */
export function peakPerSecond(reqs: AuditedRequest[]): number {
  const buckets = new Map<number, number>();
  for (const r of reqs) {
    const s = Math.floor(r.at / 1000);
    buckets.set(s, (buckets.get(s) ?? 0) + 1);
  }
  return Math.max(0, ...buckets.values());
}
