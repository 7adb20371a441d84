import type { V1VirtualMachineInstanceSpec } from '@kubevirt-ui-ext/kubevirt-api/kubevirt';

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

export interface MigrationJob {
  migrationID: string;
  source: VmiRef;
  target: VmiRef;
  connectURL: string;
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

export class FakeDriver implements VmiDriver {
  private readonly delayMs: number;

  constructor(delayMs = 30) {
    this.delayMs = delayMs;
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
