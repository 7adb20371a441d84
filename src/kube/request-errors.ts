// Why a request to an API server failed, worded for the cluster operator who has to fix it: the
// kubeconfig, the certificate, the address. Node's own messages name Node.js remedies (for an
// unknown CA: "try running Node.js with --use-system-ca"), which mean nothing to someone editing
// a Site's kubeconfig Secret, so the transport's error codes are translated here.
import { KubeApiError } from './rest.ts';

/** Certificate chains the kubeconfig's certificate-authority-data does not vouch for. */
const UNTRUSTED_CERT_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_SIGNATURE_FAILURE', 'CERT_UNTRUSTED',
]);

const BY_CODE: Record<string, string> = {
  CERT_HAS_EXPIRED: "the API server's TLS certificate has expired",
  CERT_NOT_YET_VALID: "the API server's TLS certificate is not valid yet (check the clocks)",
  ERR_TLS_CERT_ALTNAME_INVALID: "the API server's TLS certificate does not name the host of the kubeconfig's server URL",
  ECONNREFUSED: 'connection refused: nothing listens at the server address of the kubeconfig',
  ENOTFOUND: 'the host name of the kubeconfig\'s server URL does not resolve',
  EAI_AGAIN: 'the host name of the kubeconfig\'s server URL could not be resolved (DNS did not answer)',
  ETIMEDOUT: 'the connection to the API server timed out',
  UND_ERR_CONNECT_TIMEOUT: 'the connection to the API server timed out',
  ECONNRESET: 'the API server closed the connection',
  EHOSTUNREACH: 'no route to the API server\'s host',
  ENETUNREACH: 'no route to the API server\'s network',
};

/** Node's advice about its own command-line flags, cut from any message we pass on. */
const NODE_HINT = /;?\s*if the root CA is installed locally[^.;]*|;?\s*[^.;]*\bNode\.js\b[^.;]*/g;

function errorChain(e: unknown): unknown[] {
  const out: unknown[] = [];
  for (let x: unknown = e; x !== undefined && x !== null && out.length < 5; x = (x as { cause?: unknown }).cause) out.push(x);
  return out;
}

function codeOf(e: unknown): string | undefined {
  for (const x of errorChain(e)) {
    const code = (x as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** One line on why a request failed, for a condition message or an Event; never a Node.js hint. */
export function describeRequestError(e: unknown): string {
  if (e instanceof KubeApiError) return `HTTP ${e.code}${e.reason ? ` ${e.reason}` : ''}: ${e.message}`;
  const code = codeOf(e);
  if (code && UNTRUSTED_CERT_CODES.has(code)) {
    return `the API server's TLS certificate is not signed by the certificate authority in the kubeconfig (certificate-authority-data): `
      + `put the CA that issued the API server's certificate there (TLS error ${code})`;
  }
  if (code && BY_CODE[code]) return `${BY_CODE[code]} (${code})`;
  if (errorChain(e).some((x) => x instanceof Error && x.name === 'TimeoutError')) return 'the API server did not answer in time';
  const text = errorChain(e).map((x) => (x instanceof Error ? x.message : String(x))).filter((m, i, all) => m && all.indexOf(m) === i).join(': ');
  return text.replace(NODE_HINT, '').trim() || 'unknown error';
}
