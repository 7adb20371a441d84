// A VmiDriver where every VMI is a real QEMU (TCG) process in its site's node network namespace,
// with a real raw disk file per disk of the VMI spec, and where the decentralized VMIM pair performs
// a real QEMU live migration the way KubeVirt's virt-handlers do:
//  - the target node's virt-handler starts a migration proxy for the receiver: node ports for
//    libvirt's 49152 (memory) and 49153 (disks), published with the node's address in the receiver
//    VMI's status.migrationState (listenForMigration); the receiver QEMU starts with `-incoming defer`;
//  - the source connects to exactly that address and those ports, read from its own VMI's
//    migrationState (which the synchronization controller copied there). It knows nothing else of
//    the path: whatever lies between the nodes (site gateways, a WAN, anything that intercepts)
//    is the network's business;
//  - with migration TLS on (the default; KubeVirt CR migrations.disableTLS), each side's
//    virt-handler carries the connection over TLS with its node certificate and verifies the
//    peer's against its kubevirt-ca bundle (migration-proxy.ts); without it, QEMU listens on the
//    node port itself and the source's QEMU connects to it directly;
//  - disks that are not pre-copied travel as KubeVirt/libvirt send them (diskTransport 'nbd', the
//    default, disk-mirror.ts), or in the memory stream (diskTransport 'block': QEMU's block
//    migration, removed in QEMU 9.1). With 'nbd': drive-mirror into an NBD server of the target
//    QEMU on the disk port, the RAM migration once the mirrors are ready, the mirrors completed
//    inside the switch-over pause;
//  - the target VMI runs only once QEMU reports the migration completed, the target QEMU runs, and
//    its guest's heartbeat continues. On any failure or cancel the target QEMU is stopped and the
//    source keeps running (QEMU resumes a source whose migration failed).
// The guest's workload comes from the VMI spec like a real KubeVirt kernel boot:
// spec.domain.firmware.kernelBoot.kernelArgs is the guest kernel command line (see kernelCmdline).
import { closeSync, openSync, ftruncateSync, mkdirSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { kernelCmdline } from '../../src/qemu/image.ts';
import { checkGuestRam, type MemoryCheck } from '../../src/qemu/memory-check.ts';
import { logger } from '../../src/util/log.ts';
import { migrate, type MigrationResult, type MigrationSample, type MigrationTuning } from '../../src/qemu/migrate.ts';
import { startGuest, type GuestDisk, type QemuGuest } from '../../src/qemu/process.ts';
import { DiskMirrors, exportDisks, stopExports, type HostPort, type MirrorFigures } from './disk-mirror.ts';
import { LIBVIRT_BLOCK_PORT, LIBVIRT_MEMORY_PORT, nodePortFor, type MigrationEndpoint, type MigrationJob, type VmiDriver, type VmiInstance, type VmiRef } from './driver.ts';
import { MigrationProxy } from './migration-proxy.ts';
import { SmartStop, type SmartStopOptions, type StopDecision } from './smart-stop.ts';

/** Where a cluster's VMs run: the node namespace and its address on the site LAN. */
export interface SiteNode {
  netns: string;
  nodeIp: string;
}

/** Node ports of virt-handler's migration proxies: the kernel picks them in KubeVirt; here each
 *  node counts up from this base (a node's namespace holds only the stand-in's listeners). */
const PROXY_PORT_BASE = 40_000;
/** Loopback ports behind a TLS proxy (QEMU's own listeners and the source's local entry). */
const LOCAL_PORT_BASE = 50_000;

export interface QemuDriverOptions {
  /** Work directory for QMP sockets, serial logs and disk files (created and removed by the caller). */
  workDir: string;
  /** Node namespace per cluster name. */
  sites: Record<string, SiteNode>;
  /** Size of each disk file (default 16 MiB). */
  diskMiB?: number;
  /** The file behind a VMI disk when its volume is a claim the node stand-in provides (the PVC's
   *  disk.img, or its block device), as virt-launcher would mount it; undefined: a file of diskMiB. */
  diskFile?: (vmi: VmiInstance, diskName: string) => string | undefined;
  /** QEMU migration knobs, e.g. downtime-limit and max-bandwidth (QEMU's default cap is 128 MiB/s). */
  tuning?: MigrationTuning;
  /** Bound on one QEMU migration (default 10 min); the operator's own deadline usually comes first. */
  migrationTimeoutMs?: number;
  /** When to stop iterating: QEMU's own rule (downtime-limit fixed), or CloudNet's smart
   *  stop-and-copy from the per-round figures (smart-stop.ts). Default 'qemu'. */
  stopRule?: 'qemu' | 'smart';
  smartStop?: SmartStopOptions;
  /** Live QEMU figures of a running migration (for progress displays). */
  onSample?: (migrationID: string, s: MigrationSample) => void;
  /** RAM check at switch-over (src/qemu/memory-check.ts), guests then run with file-backed RAM:
   *  'repair' (default) restores pages that QEMU 7.2's TCG migration lost from the paused source
   *  and records how many; 'verify' fails such a migration instead; 'off' skips the check.
   *  Environment: CLOUDNET_MEMORY_CHECK. */
  memoryCheck?: MemoryCheckMode;
  /** How disks that are not pre-copied migrate: 'nbd' (default), KubeVirt's way (drive-mirror to
   *  the target's NBD server, on its own path); 'block', QEMU's block migration inside the memory
   *  stream (deprecated, gone in QEMU 9.1). Environment: CLOUDNET_DISK_TRANSPORT. */
  diskTransport?: DiskTransport;
}

export type DiskTransport = 'block' | 'nbd';

export interface MigrationRecord {
  migrationID: string;
  /** Guest memory of the migrating VM. */
  memoryBytes: number;
  result?: MigrationResult;
  error?: string;
  /** The last active query-migrate figures (a cancelled migration's result has none). */
  lastSample?: MigrationSample;
  /** Set when smart stop-and-copy raised the downtime-limit. */
  smartStop?: StopDecision;
  /** The RAM comparison at switch-over (memoryCheck not 'off'), and how long both ends stood
   *  paused for it (it lengthens the heartbeat pause; QEMU's downtime figure does not include it). */
  memoryCheck?: MemoryCheck;
  memoryCheckMs?: number;
  /** diskTransport 'nbd': the disk mirrors' figures. */
  diskMirror?: MirrorFigures;
  /** Where the source connected (the target's published node address and ports) and whether
   *  each side's virt-handler used TLS. */
  path?: { address: string; memoryPort: number; diskPort: number; tls: { source: boolean; target: boolean } };
  /** Set once both ends were paused at switch-over: from then on only the source holds good state. */
  switchedOver?: boolean;
  /** Host ms of the last source and first target heartbeat around the switch-over. */
  lastSourceHeartbeat?: { n: number; at: number };
  firstTargetHeartbeat?: { n: number; at: number };
}

export type MemoryCheckMode = 'repair' | 'verify' | 'off';

/** A driver mode: the option, else the environment variable, else the first allowed value. */
function choice<T extends string>(option: T | undefined, envName: string, allowed: readonly [T, ...T[]]): T {
  const v = option ?? process.env[envName] ?? allowed[0];
  if (!(allowed as readonly string[]).includes(v)) throw new Error(`${envName} must be ${allowed.join(', ')}, not ${v}`);
  return v as T;
}

/** Guest RAM files go to tmpfs (CLOUDNET_RAM_DIR, default /dev/shm), one directory per process;
 *  where /dev/shm is small (container defaults are 64 MiB) to the temp dir instead: slower
 *  (page-cache writeback), but the guests still fit. */
let ramDirPath: string | undefined;
const SHM_NEEDED = 4 * 1024 ** 3;
function ramBase(): string {
  if (process.env.CLOUDNET_RAM_DIR) return process.env.CLOUDNET_RAM_DIR;
  try {
    const st = statfsSync('/dev/shm');
    if (st.bavail * st.bsize >= SHM_NEEDED) return '/dev/shm';
  } catch {
    // no /dev/shm
  }
  return tmpdir();
}
function ramDir(): string {
  if (!ramDirPath) {
    const dir = join(ramBase(), `cloudnet-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    // The guests remove their own files when they stop (src/qemu/process.ts); this is the rest.
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    ramDirPath = dir;
  }
  return ramDirPath;
}

const log = logger('qemu-driver');

const key = (r: VmiRef) => `${r.cluster}/${r.namespace}/${r.name}`;

export function memoryMiB(spec: VmiInstance['spec']): number {
  const q = spec.domain.memory?.guest ?? spec.domain.resources?.requests?.memory ?? '256Mi';
  const m = /^(\d+)(Mi|Gi|M|G)?$/.exec(String(q));
  if (!m) throw new Error(`unsupported guest memory quantity ${q}`);
  const n = Number(m[1]);
  return m[2] === 'Gi' || m[2] === 'G' ? n * 1024 : n;
}

function kernelArgs(spec: VmiInstance['spec']): string {
  return spec.domain.firmware?.kernelBoot?.kernelArgs ?? kernelCmdline({ name: 'idle' });
}

export class QemuDriver implements VmiDriver {
  readonly guests = new Map<string, QemuGuest>();
  readonly disks = new Map<string, string[]>();
  /** Disk files that belong to volumes (diskFile), not to this driver. */
  private readonly claimedFiles = new Set<string>();
  private readonly memory = new Map<string, number>();
  readonly migrations = new Map<string, MigrationRecord>();
  private readonly o: QemuDriverOptions;
  private readonly proxyPorts = new Map<string, number>();
  private localPorts = 0;
  stopRule: 'qemu' | 'smart';
  /** QEMU migration knobs for the next migrations (KubeVirt's migration configuration). */
  tuning: MigrationTuning;
  private seq = 0;

  constructor(o: QemuDriverOptions) {
    this.o = o;
    this.stopRule = o.stopRule ?? 'qemu';
    this.tuning = o.tuning ?? {};
  }

  guest(ref: VmiRef): QemuGuest | undefined {
    return this.guests.get(key(ref));
  }

  private site(cluster: string): SiteNode {
    const s = this.o.sites[cluster];
    if (!s) throw new Error(`qemu driver: no node namespace configured for cluster ${cluster}`);
    return s;
  }

  private makeDisks(vmi: VmiInstance): GuestDisk[] {
    const disks = vmi.spec.domain.devices.disks ?? [];
    const n = disks.length;
    const files: string[] = [];
    const size = (this.o.diskMiB ?? 16) * 1024 * 1024;
    for (let i = 0; i < n; i++) {
      const claimed = this.o.diskFile?.(vmi, disks[i].name);
      if (claimed) { files.push(claimed); this.claimedFiles.add(claimed); continue; } // the volume's own storage: never created or removed here
      const f = join(this.o.workDir, `${vmi.cluster}-${vmi.namespace}-${vmi.name}-${++this.seq}-disk${i}.raw`);
      const fd = openSync(f, 'w');
      ftruncateSync(fd, size);
      closeSync(fd);
      files.push(f);
    }
    this.disks.set(key(vmi), files);
    return files.map((path) => ({ path, format: 'raw' }));
  }

  private async boot(vmi: VmiInstance, incoming: boolean, signal: AbortSignal): Promise<void> {
    const k = key(vmi);
    if (this.guests.has(k)) return;
    const disks = this.makeDisks(vmi);
    const g = await startGuest({
      name: `${vmi.cluster}-${vmi.namespace}-${vmi.name}-${++this.seq}`,
      workDir: this.o.workDir,
      memoryMiB: memoryMiB(vmi.spec),
      append: kernelArgs(vmi.spec),
      disks,
      netns: this.site(vmi.cluster).netns,
      ...(this.memoryCheck !== 'off' ? { ramFile: join(ramDir(), `${vmi.cluster}-${vmi.namespace}-${vmi.name}-${this.seq}.ram`) } : {}),
      incoming,
      waitReady: !incoming,
      bootTimeoutMs: 120_000,
    });
    this.guests.set(k, g);
    this.memory.set(k, memoryMiB(vmi.spec) * 1024 * 1024);
    if (signal.aborted) await this.stop(vmi);
  }

  start(vmi: VmiInstance, signal: AbortSignal): Promise<void> {
    return this.boot(vmi, false, signal);
  }

  /** The target node's virt-handler opens its migration proxy ports (memory, disks) for this
   *  migration; the receiver QEMU (or the TLS proxy in front of it) will listen on them. */
  async listenForMigration(vmi: VmiInstance): Promise<MigrationEndpoint> {
    const node = this.site(vmi.cluster);
    const next = this.proxyPorts.get(node.netns) ?? PROXY_PORT_BASE;
    this.proxyPorts.set(node.netns, next + 2);
    return { address: node.nodeIp, ports: { [String(next)]: LIBVIRT_MEMORY_PORT, [String(next + 1)]: LIBVIRT_BLOCK_PORT } };
  }

  prepareReceiver(vmi: VmiInstance, _migrationID: string, signal: AbortSignal): Promise<void> {
    return this.boot(vmi, true, signal);
  }

  /** Stops the QEMU. Its disk files stay (a stopped VM keeps its disks; tests checksum them) until
   *  the work directory goes, except for a failed receiver's, which are discarded. */
  async stop(vmi: VmiRef, discardDisks = false): Promise<void> {
    const k = key(vmi);
    const g = this.guests.get(k);
    this.guests.delete(k);
    await g?.stop(2000);
    if (discardDisks) {
      for (const f of this.disks.get(k) ?? []) if (!this.claimedFiles.has(f)) rmSync(f, { force: true });
      this.disks.delete(k);
    }
  }

  /** Disk files of a VMI (for checksums in tests). */
  diskFiles(ref: VmiRef): string[] {
    return this.disks.get(key(ref)) ?? [];
  }

  async migrate(job: MigrationJob, signal: AbortSignal): Promise<void> {
    const src = this.guest(job.source);
    const dst = this.guest(job.target);
    if (!src) throw new Error(`qemu driver: source VMI ${key(job.source)} has no QEMU`);
    if (!dst) throw new Error(`qemu driver: receiver VMI ${key(job.target)} has no QEMU`);
    const rec: MigrationRecord = { migrationID: job.migrationID, memoryBytes: this.memory.get(key(job.source)) ?? 0 };
    this.migrations.set(job.migrationID, rec);
    const diskIds = (this.disks.get(key(job.source)) ?? []).map((_, i) => `disk${i}`);
    const transport = this.diskTransport;
    const mirrors = diskIds.length && transport === 'nbd' ? new DiskMirrors(src.qmp, diskIds) : undefined;
    const proxy = new MigrationProxy();
    const timeoutMs = this.o.migrationTimeoutMs ?? 600_000;
    // Cancel = KubeVirt aborting the migration: the source QEMU stops sending and keeps running.
    const smart = this.stopRule === 'smart' ? new SmartStop(this.o.smartStop) : undefined;
    const onAbort = (): void => { void src.qmp.execute('migrate_cancel').catch(() => undefined); };
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      if (signal.aborted) throw signal.reason;
      const path = await this.connections(job, rec, proxy, !!mirrors);
      if (mirrors) {
        // KubeVirt's order: the target exports its disks, the source mirrors them until every
        // mirror is ready, and only then does the memory migration start.
        rec.diskMirror = {};
        await exportDisks(dst.qmp, path.disk.listen, diskIds);
        await mirrors.start(path.disk.connect);
        await mirrors.waitReady(signal, timeoutMs);
        Object.assign(rec.diskMirror, mirrors.figures);
      }
      const memoryCheck = this.memoryCheck !== 'off';
      const result = await migrate({
        source: src.qmp, destination: dst.qmp, incomingUri: path.incomingUri, uri: path.uri,
        capabilities: { ...(diskIds.length && !mirrors ? { block: true } : {}), ...this.tuning.capabilities },
        parameters: { 'max-bandwidth': 1024 * 1024 * 1024, 'downtime-limit': 300, ...this.tuning.parameters },
        timeoutMs,
        // The target is held paused at switch-over to finish the disk mirrors (as libvirt starts
        // it only after them) and for the RAM check.
        ...(memoryCheck || mirrors ? { atSwitchover: () => this.atSwitchover(src, dst, rec, memoryCheck, mirrors) } : {}),
        onSample: (s) => {
          // A cancelled migration's final sample carries no RAM figures: keep the last real one.
          if (s.status === 'active' || s.status === 'completed') rec.lastSample = s;
          this.o.onSample?.(job.migrationID, s);
          const d = smart?.observe(s);
          if (d) {
            rec.smartStop = d;
            void src.qmp.execute('migrate-set-parameters', { 'downtime-limit': d.downtimeLimitMs }).catch(() => undefined);
          }
        },
      });
      rec.result = result;
      if (signal.aborted) throw signal.reason;
      if (result.status !== 'completed') throw new Error(`QEMU migration ${result.status}: ${result.error ?? 'no error given'}`);

      if (result.destinationStatus !== 'running') throw new Error(`target QEMU is ${result.destinationStatus ?? 'not answering'} after the migration`);
      // The guest must actually go on running at the target: a fresh heartbeat after completion.
      const from = dst.serial.count;
      // A minute: with eight TCG guests on two cores a resumed guest can take tens of seconds to print.
      await dst.serial.waitFor(/HB \d+/, 60_000, from);
      const last = src.serial.heartbeats().at(-1);
      const first = dst.serial.heartbeats()[0];
      if (last) rec.lastSourceHeartbeat = { n: last.n, at: last.at };
      if (first) rec.firstTargetHeartbeat = { n: first.n, at: first.at };
      if (last && first && first.n <= last.n) throw new Error(`guest heartbeat went backwards across the migration (${last.n} -> ${first.n})`);
    } catch (e) {
      rec.error = e instanceof Error ? e.message : String(e);
      if (proxy.log && /error|fail|refused|verify/i.test(proxy.log)) rec.error += ` (migration proxy: ${proxy.log.split('\n').filter((l) => / E /.test(l)).slice(-2).join('; ')})`;
      // Mirrors still running are cancelled first: the source keeps running and its disks are its own.
      if (mirrors) await mirrors.cancel().catch(() => undefined);
      // The receiver is useless now. A failed or cancelled pre-copy leaves the source running;
      // after a completed transfer whose target did not come up, the source is paused
      // (postmigrate) and still holds the only good copy: with the target gone, resume it.
      await this.stop(job.target, true);
      if (rec.result?.status === 'completed' || rec.switchedOver) await src.qmp.execute('cont').catch(() => undefined);
      throw e;
    } finally {
      signal.removeEventListener('abort', onAbort);
      proxy.stop();
    }
  }

  private localPort(): number {
    return LOCAL_PORT_BASE + (this.localPorts++ % 10_000);
  }

  /**
   * The connections of one migration: the target listens on its published node ports (QEMU
   * itself, or virt-handler's TLS proxy in front of a loopback QEMU listener), and the source dials
   * the address and ports from its VMI (QEMU itself, or through its virt-handler's TLS proxy).
   */
  private async connections(job: MigrationJob, rec: MigrationRecord, proxy: MigrationProxy, disks: boolean): Promise<{ incomingUri: string; uri: string; disk: { listen: HostPort; connect: HostPort } }> {
    const target = this.site(job.target.cluster);
    const source = this.site(job.source.cluster);
    const address = job.endpoint.address;
    const memoryPort = nodePortFor(job.endpoint, LIBVIRT_MEMORY_PORT);
    const diskPort = nodePortFor(job.endpoint, LIBVIRT_BLOCK_PORT);
    rec.path = { address, memoryPort, diskPort, tls: { source: !!job.tls.source, target: !!job.tls.target } };
    let incomingUri = `tcp:0.0.0.0:${memoryPort}`;
    let diskListen: HostPort = { host: target.nodeIp, port: diskPort };
    if (job.tls.target) {
      const [m, d] = [this.localPort(), this.localPort()];
      await proxy.target(target.netns, { host: target.nodeIp, port: memoryPort }, { host: '127.0.0.1', port: m }, job.tls.target, this.o.workDir);
      if (disks) await proxy.target(target.netns, { host: target.nodeIp, port: diskPort }, { host: '127.0.0.1', port: d }, job.tls.target, this.o.workDir);
      incomingUri = `tcp:127.0.0.1:${m}`;
      diskListen = { host: '127.0.0.1', port: d };
    }
    let uri = `tcp:${address}:${memoryPort}`;
    let diskConnect: HostPort = { host: address, port: diskPort };
    if (job.tls.source) {
      const [m, d] = [this.localPort(), this.localPort()];
      await proxy.source(source.netns, { host: '127.0.0.1', port: m }, { host: address, port: memoryPort }, job.tls.source, this.o.workDir);
      if (disks) await proxy.source(source.netns, { host: '127.0.0.1', port: d }, { host: address, port: diskPort }, job.tls.source, this.o.workDir);
      uri = `tcp:127.0.0.1:${m}`;
      diskConnect = { host: '127.0.0.1', port: d };
    }
    return { incomingUri, uri, disk: { listen: diskListen, connect: diskConnect } };
  }

  /** The transport for disks that are not pre-copied (option, else CLOUDNET_DISK_TRANSPORT, else nbd). */
  get diskTransport(): DiskTransport {
    return choice(this.o.diskTransport, 'CLOUDNET_DISK_TRANSPORT', ['nbd', 'block']);
  }

  /** Both QEMUs are paused after the RAM migration: the disk mirrors complete (the source cannot
   *  write any more) and the target's NBD server stops, then the RAM check; the target runs after. */
  private async atSwitchover(src: QemuGuest, dst: QemuGuest, rec: MigrationRecord, memoryCheck: boolean, mirrors?: DiskMirrors): Promise<void> {
    rec.switchedOver = true;
    if (mirrors) {
      await mirrors.complete();
      await stopExports(dst.qmp);
      Object.assign(rec.diskMirror ?? {}, mirrors.figures);
    }
    if (memoryCheck) await this.checkRam(src, dst, rec);
  }

  private get memoryCheck(): MemoryCheckMode {
    return choice(this.o.memoryCheck, 'CLOUDNET_MEMORY_CHECK', ['repair', 'verify', 'off']);
  }

  /** Both QEMUs are paused: compare their RAM files, and restore lost pages or refuse the target. */
  private async checkRam(src: QemuGuest, dst: QemuGuest, rec: MigrationRecord): Promise<void> {
    if (!src.ramFile || !dst.ramFile) throw new Error('memory check: guests were started without RAM files');
    const repair = this.memoryCheck === 'repair';
    const t0 = performance.now();
    const mc = await checkGuestRam(src.ramFile, dst.ramFile, { repair });
    rec.memoryCheckMs = Math.round(performance.now() - t0);
    rec.memoryCheck = mc;
    if (!mc.mismatchCount) return;
    const what = `${mc.mismatchCount} of ${mc.pages} pages (e.g. ${mc.mismatched.slice(0, 8).join(', ')})`;
    if (!repair) throw new Error(`target RAM differs from the source's in ${what}`);
    log.warn('restored guest pages the QEMU migration lost (QEMU < 9.0 TCG dirty tracking)', { migrationID: rec.migrationID, pages: mc.repaired, first: mc.mismatched.slice(0, 8) });
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.guests.keys()].map((k) => {
      const [cluster, namespace, name] = k.split('/');
      return this.stop({ cluster, namespace, name });
    }));
  }
}
