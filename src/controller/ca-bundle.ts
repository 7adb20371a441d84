// KubeVirt's CA trust between two clusters, as virt-operator really handles it
// (kubevirt/kubevirt pkg/virt-operator/resource/apply/core.go, v1.7.0):
//  - `kubevirt-ca` (key `ca-bundle`) holds the cluster's own CA plus every external CA it imported;
//  - `kubevirt-external-ca` is an inbox: virt-operator parses it, appends each certificate that is
//    valid now to `kubevirt-ca`, then empties the inbox.
// So "cluster B trusts A" means every currently valid certificate of A's bundle is in B's
// kubevirt-ca or still waiting in B's kubevirt-external-ca. Certificates are compared by their DER
// fingerprint, never by PEM text (re-encoding changes line breaks).
import { X509Certificate } from 'node:crypto';

export interface ParsedBundle {
  certs: X509Certificate[];
  /** Why the bundle is unusable (no PEM certificate, or a block that does not parse). */
  error?: string;
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** Parses every CERTIFICATE block of a PEM bundle; any garbage block makes the bundle invalid. */
export function parseCABundle(pem: string | undefined): ParsedBundle {
  const text = pem ?? '';
  const blocks = text.match(PEM_BLOCK) ?? [];
  if (blocks.length === 0) return { certs: [], error: text.trim() ? 'no PEM CERTIFICATE block in it' : 'it is empty' };
  // Text outside the blocks other than whitespace means someone wrote something we do not understand.
  const rest = text.replace(PEM_BLOCK, '').trim();
  if (rest) return { certs: [], error: `it holds text outside PEM CERTIFICATE blocks (${JSON.stringify(rest.slice(0, 40))})` };
  const certs: X509Certificate[] = [];
  for (const [i, b] of blocks.entries()) {
    try {
      certs.push(new X509Certificate(b));
    } catch (e) {
      return { certs: [], error: `certificate ${i + 1} does not parse as X.509: ${e instanceof Error ? e.message : String(e)}` };
    }
  }
  return { certs };
}

export function validAt(c: X509Certificate, now: Date): boolean {
  return Date.parse(c.validFrom) <= now.getTime() && now.getTime() <= Date.parse(c.validTo);
}

/** Certificates of `from` that `to` must trust: the ones valid now (virt-operator skips the rest). */
export function certsToTrust(from: ParsedBundle, now: Date): X509Certificate[] {
  return from.certs.filter((c) => validAt(c, now));
}

/** Fingerprints of every certificate in the given bundles that parse (invalid ones count as empty). */
function fingerprints(...bundles: (string | undefined)[]): Set<string> {
  const out = new Set<string>();
  for (const b of bundles) for (const c of parseCABundle(b).certs) out.add(c.fingerprint256);
  return out;
}

/** The certificates of `fromBundle` (valid now) that neither `toCA` nor `toExternal` holds yet. */
export function missingTrust(fromBundle: string | undefined, toCA: string | undefined, toExternal: string | undefined, now: Date): X509Certificate[] {
  const have = fingerprints(toCA, toExternal);
  return certsToTrust(parseCABundle(fromBundle), now).filter((c) => !have.has(c.fingerprint256));
}

/** `existing` plus the given certificates, each as normalized PEM on its own lines. */
export function appendCerts(existing: string | undefined, certs: X509Certificate[]): string {
  const base = (existing ?? '').trim();
  const add = certs.map((c) => c.toString().trim()).join('\n');
  if (!add) return existing ?? '';
  return `${base ? `${base}\n` : ''}${add}\n`;
}

/** A reason and message when a cluster's kubevirt-ca cannot be trusted from, else undefined. */
export function bundleProblem(where: string, ns: string, bundle: string | undefined, present: boolean, now: Date): { reason: string; message: string } | undefined {
  if (!present) return { reason: 'CABundleNotFound', message: `the ${where} cluster has no ConfigMap ${ns}/kubevirt-ca with key ca-bundle (is KubeVirt deployed there?)` };
  const p = parseCABundle(bundle);
  if (p.error) return { reason: 'CABundleInvalid', message: `ConfigMap ${ns}/kubevirt-ca on the ${where} cluster is not a PEM certificate bundle: ${p.error}` };
  if (certsToTrust(p, now).length === 0) return { reason: 'CABundleInvalid', message: `ConfigMap ${ns}/kubevirt-ca on the ${where} cluster holds no certificate valid now` };
  return undefined;
}
