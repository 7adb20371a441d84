import net from 'node:net';
import type { V1VirtualMachineInstanceSpec } from '@kubevirt-ui-ext/kubevirt-api/kubevirt';
import type { NodeTls } from './migration-proxy.ts';

// The part of the stand-in that "runs" guests. The default FakeDriver only waits; a later real-QEMU
// mode plugs in a driver that starts a QEMU per VMI and performs the memory migration itself.
export interface VmiRef {
  cluster: string;
  namespace: string;
  name: string;
}

/** A VMI with its spec (domain, volumes), which a real driver turns into a QEMU command line. */
export interface VmiInstance extends VmiRef {
  spec: V1VirtualMachineInstanceSpec;
}

/**
 * The target node's migration proxy for one migration, as virt-handler publishes it in the
 * receiver VMI's status.migrationState and the synchronization controller copies to the source
 * VMI: the node's migration address, and targetDirectMigrationNodePorts (node port → the libvirt
 * port it stands for: 49152 memory, 49153 disks).
 */
export interface MigrationEndpoint {
  address: string;
  ports: Record<string, number>;
}

/** KubeVirt's libvirt ports (pkg/virt-handler/migration-proxy): what each proxied node port carries. */
export const LIBVIRT_MEMORY_PORT = 49152;
export const LIBVIRT_BLOCK_PORT = 49153;

/** The node port of `endpoint` that stands for libvirt port `libvirtPort`. */
export function nodePortFor(endpoint: MigrationEndpoint, libvirtPort: number): number {
  const e = Object.entries(endpoint.ports).find(([, v]) => v === libvirtPort);
  if (!e) throw new Error(`the target's migration proxy publishes no port for ${libvirtPort}: ${JSON.stringify(endpoint.ports)}`);
  return Number(e[0]);
}

export interface MigrationJob {
  migrationID: string;
  source: VmiRef;
  target: VmiRef;
  connectURL: string;
  /** Where the source connects: read from the source VMI's migrationState, as virt-handler does. */
  endpoint: MigrationEndpoint;
  /**
   * virt-handler's migration TLS, per side: each side's KubeVirt CR decides (migrations.disableTLS
   * not true: TLS with that node's certificate, verifying the peer against its kubevirt-ca bundle).
   * Sides that disagree fail the connection, as in KubeVirt.
   */
  tls: { source?: NodeTls; target?: NodeTls };
  /** Hang / fail requests carried by the source VM's annotations (see standin.ts). */
  inject: Injection;
}

export interface Injection {
  /** VMIM phase at which the migration stops progressing forever. */
  hangAt?: string;
  /** VMIM phase at which both VMIMs fail. */
  failAt?: string;
  /** Message for a True decentralizedMigrationBlocked condition on both VMIMs. */
  blocked?: string;
}

export interface VmiDriver {
  /** Boots the guest of a VMI (resolves when it runs). */
  start(vmi: VmiInstance, signal: AbortSignal): Promise<void>;
  /** virt-handler on the receiver's node starts the migration proxy for it: its address and ports. */
  listenForMigration(vmi: VmiInstance, migrationID: string): Promise<MigrationEndpoint>;
  /** Prepares a receiver (a real driver starts QEMU with -incoming); resolves when it listens. */
  prepareReceiver(vmi: VmiInstance, migrationID: string, signal: AbortSignal): Promise<void>;
  /** Stops the guest of a VMI. */
  stop(vmi: VmiRef): Promise<void>;
  /** Transfers the running guest from source to target; resolves when the target runs it. */
  migrate(job: MigrationJob, signal: AbortSignal): Promise<void>;
}

const sleep = (ms: number, signal: AbortSignal) => new Promise<void>((resolve, reject) => {
  if (signal.aborted) { reject(signal.reason); return; }
  const t = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => { clearTimeout(t); reject(signal.reason); }, { once: true });
});

export interface FakeDriverOptions {
  delayMs?: number;
  /** The node's migration address the fake proxy publishes. Default 127.0.0.1. */
  nodeAddress?: string;
}

export class FakeDriver implements VmiDriver {
  private readonly delayMs: number;
  private readonly nodeAddress: string;

  constructor(o: FakeDriverOptions | number = {}) {
    const opts = typeof o === 'number' ? { delayMs: o } : o;
    this.delayMs = opts.delayMs ?? 30;
    this.nodeAddress = opts.nodeAddress ?? '127.0.0.1';
  }

  /** Free ports on the node address, like the kernel hands virt-handler's proxy listeners. */
  async listenForMigration(): Promise<MigrationEndpoint> {
    const free = async (): Promise<number> => {
      const s = net.createServer();
      await new Promise<void>((resolve, reject) => { s.once('error', reject); s.listen(0, this.nodeAddress, resolve); });
      const p = (s.address() as net.AddressInfo).port;
      await new Promise((r) => s.close(r));
      return p;
    };
    return { address: this.nodeAddress, ports: { [String(await free())]: LIBVIRT_MEMORY_PORT, [String(await free())]: LIBVIRT_BLOCK_PORT } };
  }

  async start(_vmi: VmiInstance, signal: AbortSignal): Promise<void> {
    await sleep(this.delayMs, signal);
  }

  async prepareReceiver(_vmi: VmiInstance, _migrationID: string, signal: AbortSignal): Promise<void> {
    await sleep(this.delayMs, signal);
  }

  async stop(): Promise<void> {}

  async migrate(job: MigrationJob, signal: AbortSignal): Promise<void> {
    if (job.inject.hangAt === 'Running') await new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
    await sleep(this.delayMs, signal);
    if (job.inject.failAt === 'Succeeded') throw new Error('stand-in: injected failure at the end of the memory transfer');
  }
}
