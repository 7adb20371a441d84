// Real Kubernetes control planes for tests: one etcd 3.6 and one kube-apiserver per cluster, on
// loopback with free ports, certificates made on the fly and RBAC on (envtest's flag set, see
// ../shared/reference/operator-patterns.md section B). A cluster starts in a few seconds; every
// process and temp dir is removed by stop(), or by the exit hooks in processes.ts if a test dies.
import { KubeConfig } from '@kubernetes/client-node';
import yaml from 'js-yaml';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { get as httpGet } from 'node:http';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCertAuthority, createSigningKeyPair, issueCertificate, type CertAuthority, type PemFiles } from './certs.ts';
import { waitFor } from '../helpers/poll.ts';
import { freePort } from '../helpers/ports.ts';
import { ownDir, releaseDir, startProcess, startWatchdog, tailFile, type ManagedProcess } from './processes.ts';
import type { RestCredentials } from './rest.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const cacheDir = process.env.CLOUDNET_CACHE ?? join(repoRoot, '.cache');
export const binDir = join(cacheDir, 'bin');
/** Prefix of every cluster's temp dir (tests use it to prove cleanup). */
export const clusterDirPrefix = join(tmpdir(), 'cloudnet-cluster-');

const START_TIMEOUT_MS = 60_000;

export interface Cluster {
  readonly name: string;
  /** Temp dir holding certs, etcd data, logs and the kubeconfig; removed by stop(). */
  readonly dir: string;
  /** https://127.0.0.1:<port> */
  readonly server: string;
  readonly kubeconfigPath: string;
  readonly kubeconfigYaml: string;
  /** Admin (system:masters) credentials. */
  readonly kubeConfig: KubeConfig;
  /** The same admin identity for the raw client in rest.ts. */
  readonly credentials: RestCredentials;
  readonly ca: CertAuthority;
  readonly etcdPid: number;
  readonly apiServerPid: number;
  /** Kills kube-apiserver (etcd and its data stay) and starts it again on the same port. */
  restartApiServer(): Promise<void>;
  /** Idempotent. */
  stop(): Promise<void>;
}

export interface ClusterOptions {
  name?: string;
  /** Extra kube-apiserver flags (`--flag=value`), appended last so they win. */
  apiServerArgs?: string[];
}

export interface UserCredentials {
  user: string;
  groups?: string[];
}

export interface UserKubeconfig {
  kubeconfigYaml: string;
  kubeConfig: KubeConfig;
  credentials: RestCredentials;
}

function binary(name: string): string {
  const path = join(binDir, name);
  if (!existsSync(path)) {
    throw new Error(`${name} not found at ${path}: run hack/build-k8s-binaries.sh (hack/setup.sh does) first`);
  }
  return path;
}

export function makeKubeconfigYaml(o: { name: string; server: string; caPem: string; user: string; client: PemFiles }): string {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return yaml.dump({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: o.name, cluster: { server: o.server, 'certificate-authority-data': b64(o.caPem) } }],
    users: [{ name: o.user, user: { 'client-certificate-data': b64(o.client.certPem), 'client-key-data': b64(o.client.keyPem) } }],
    contexts: [{ name: o.name, context: { cluster: o.name, user: o.user } }],
    'current-context': o.name,
  });
}

function kubeConfigFrom(yamlText: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromString(yamlText);
  return kc;
}

/** GET <server><path> with the admin client cert; resolves the HTTP status (0 if unreachable). */
function probe(server: string, path: string, ca: string, client: PemFiles): Promise<number> {
  return new Promise((resolvePromise) => {
    const req = request(
      `${server}${path}`,
      { ca, cert: client.certPem, key: client.keyPem, agent: false, timeout: 2000 },
      (res) => {
        res.resume();
        resolvePromise(res.statusCode ?? 0);
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolvePromise(0));
    req.end();
  });
}

function etcdHealthy(port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const req = httpGet({ host: '127.0.0.1', port, path: '/health', agent: false, timeout: 2000 }, (res) => {
      res.resume();
      resolvePromise(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolvePromise(false));
  });
}

async function waitReady(what: ManagedProcess, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  await waitFor(async () => {
    if (what.hasExited()) throw new Error(`${what.name} exited during startup; log tail:\n${tailFile(what.logPath)}`);
    return check();
  }, { what: `${what.name} ready`, timeoutMs, intervalMs: 100, retryErrors: false, diagnostics: () => `log tail:\n${tailFile(what.logPath)}` });
}

function etcdArgs(dir: string, name: string, clientPort: number, peerPort: number): string[] {
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  return [
    `--name=${name}`,
    `--data-dir=${join(dir, 'etcd')}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=${name}=${peer}`,
    '--unsafe-no-fsync=true',
    '--log-level=warn',
  ];
}

// Admission plugins a bare control plane cannot use (no controller-manager creates the default
// ServiceAccount, no scheduler or nodes) or that cost startup time for nothing here.
const DISABLED_ADMISSION = [
  'ServiceAccount',
  'TaintNodesByCondition',
  'Priority',
  'DefaultTolerationSeconds',
  'DefaultStorageClass',
  'StorageObjectInUseProtection',
  'PersistentVolumeClaimResize',
  'RuntimeClass',
  'CertificateApproval',
  'CertificateSigning',
  'ClusterTrustBundleAttest',
  'CertificateSubjectRestriction',
  'DefaultIngressClass',
  'PodSecurity',
  'LimitRanger',
];

function apiServerArgs(o: {
  dir: string;
  port: number;
  etcdPort: number;
  serving: PemFiles;
  ca: CertAuthority;
  sa: { publicKeyPath: string; privateKeyPath: string };
}): string[] {
  return [
    `--etcd-servers=http://127.0.0.1:${o.etcdPort}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${o.port}`,
    `--cert-dir=${o.dir}`,
    `--tls-cert-file=${o.serving.certPath}`,
    `--tls-private-key-file=${o.serving.keyPath}`,
    `--client-ca-file=${o.ca.certPath}`,
    '--authorization-mode=RBAC',
    '--allow-privileged=true',
    // ClusterIPs are only allocated, never routed; a benchmark range keeps us off private ranges.
    '--service-cluster-ip-range=198.19.255.0/24',
    `--service-account-issuer=https://127.0.0.1:${o.port}/`,
    `--service-account-key-file=${o.sa.publicKeyPath}`,
    `--service-account-signing-key-file=${o.sa.privateKeyPath}`,
    `--disable-admission-plugins=${DISABLED_ADMISSION.join(',')}`,
    // No endpoints object for the "kubernetes" Service: nothing routes to it, and the reconciler
    // would otherwise write to etcd every few seconds.
    '--endpoint-reconciler-type=none',
    '--profiling=false',
    '--v=0',
  ];
}

async function startOnce(opts: ClusterOptions): Promise<Cluster> {
  const name = opts.name ?? 'cluster';
  const dir = await mkdtemp(clusterDirPrefix);
  ownDir(dir);
  const stopWatchdog = startWatchdog(dir);
  let etcd: ManagedProcess | undefined;
  let apiServer: ManagedProcess | undefined;
  const stopAll = async () => {
    await Promise.all([apiServer?.kill(), etcd?.kill()]);
    stopWatchdog();
    releaseDir(dir);
  };
  try {
    const [etcdPort, peerPort, port] = [await freePort(), await freePort(), await freePort()];
    // etcd needs nothing from the certs, so it boots while they are made.
    etcd = startProcess(dir, 'etcd', binary('etcd'), etcdArgs(dir, name, etcdPort, peerPort));
    const etcdProc = etcd;
    const apiServerBin = binary('kube-apiserver');
    const etcdUp = waitReady(etcdProc, () => etcdHealthy(etcdPort), START_TIMEOUT_MS);
    // Keep a failed etcd from becoming an unhandled rejection while certs are made.
    etcdUp.catch(() => {});
    const ca = await createCertAuthority(dir, `${name}-ca`);
    const [serving, admin, sa] = await Promise.all([
      issueCertificate(ca, dir, {
        name: 'apiserver', commonName: 'kube-apiserver', usage: 'server',
        ipAddresses: ['127.0.0.1'], dnsNames: ['localhost'],
      }),
      issueCertificate(ca, dir, { name: 'admin', commonName: 'admin', organizations: ['system:masters'], usage: 'client' }),
      createSigningKeyPair(dir, 'sa-signer'),
    ]);
    await etcdUp;
    const server = `https://127.0.0.1:${port}`;
    const args = [...apiServerArgs({ dir, port, etcdPort, serving, ca, sa }), ...(opts.apiServerArgs ?? [])];
    const startApiServer = async () => {
      apiServer = startProcess(dir, 'kube-apiserver', apiServerBin, args);
      await waitReady(apiServer, async () => (await probe(server, '/readyz', ca.certPem, admin)) === 200, START_TIMEOUT_MS);
    };
    await startApiServer();
    const kubeconfigYaml = makeKubeconfigYaml({ name, server, caPem: ca.certPem, user: 'admin', client: admin });
    const kubeconfigPath = join(dir, 'admin.kubeconfig');
    await writeFile(kubeconfigPath, kubeconfigYaml, { mode: 0o600 });
    let stopped = false;
    return {
      name,
      dir,
      server,
      kubeconfigPath,
      kubeconfigYaml,
      kubeConfig: kubeConfigFrom(kubeconfigYaml),
      credentials: { server, caPem: ca.certPem, certPem: admin.certPem, keyPem: admin.keyPem },
      ca,
      etcdPid: etcdProc.pid,
      get apiServerPid() {
        return apiServer?.pid ?? 0;
      },
      async restartApiServer() {
        if (stopped) throw new Error(`cluster ${name} is stopped`);
        await apiServer?.kill('SIGKILL');
        if (etcdProc.hasExited()) throw new Error(`etcd of cluster ${name} is not running`);
        await startApiServer();
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await stopAll();
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

function looksLikePortClash(err: unknown): boolean {
  return err instanceof Error && /address already in use/i.test(err.message);
}

export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(opts);
    } catch (err) {
      // Another test process may have bound one of our ports between check and bind.
      if (attempt < 3 && looksLikePortClash(err)) continue;
      throw err;
    }
  }
}

/** Starts n clusters in parallel, named `cluster-0` … `cluster-<n-1>` unless names are given. */
export async function startClusters(n: number, names?: string[]): Promise<Cluster[]> {
  const results = await Promise.allSettled(
    Array.from({ length: n }, (_, i) => startCluster({ name: names?.[i] ?? `cluster-${i}` })),
  );
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(results.map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)));
    throw failed.reason;
  }
  return results.map((r) => (r as PromiseFulfilledResult<Cluster>).value);
}

/**
 * Credentials for a non-admin identity (a client cert signed by the cluster CA), so RBAC tests
 * can act as a restricted user, e.g. the operator's ServiceAccount with only its Role.
 */
export async function userKubeconfig(cluster: Cluster, who: UserCredentials): Promise<UserKubeconfig> {
  const stem = `user-${who.user.replace(/[^A-Za-z0-9]/g, '_')}-${randomBytes(4).toString('hex')}`;
  const client = await issueCertificate(cluster.ca, cluster.dir, {
    name: stem, commonName: who.user, organizations: who.groups ?? [], usage: 'client',
  });
  const kubeconfigYaml = makeKubeconfigYaml({
    name: cluster.name, server: cluster.server, caPem: cluster.ca.certPem, user: who.user, client,
  });
  return {
    kubeconfigYaml,
    kubeConfig: kubeConfigFrom(kubeconfigYaml),
    credentials: { server: cluster.server, caPem: cluster.ca.certPem, certPem: client.certPem, keyPem: client.keyPem },
  };
}
