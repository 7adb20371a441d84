// A stand-in VMI driver (test/standin/driver.ts) that takes about as long as KubeVirt on a real
// node: a guest boots in a few seconds, a receiver pod is ready in a few more, and the memory
// transfer of a loaded guest over a WAN lasts tens of seconds. Durations are drawn per VMI or
// migration from a seeded generator, so two runs with the same seed wait alike.
import { createHash } from 'node:crypto';
import { LIBVIRT_BLOCK_PORT, LIBVIRT_MEMORY_PORT, type MigrationEndpoint, type MigrationJob, type VmiDriver, type VmiInstance } from '../../test/standin/driver.ts';

export interface PacedDriverOptions {
  /** Guest boot, ms range. Default 2–4 s. */
  bootMs?: [number, number];
  /** Receiver pod scheduled and listening, ms range. Default 2–5 s. */
  receiverMs?: [number, number];
  /** Memory transfer, ms range. Default 20–40 s. */
  memoryMs?: [number, number];
  seed?: string;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); reject(signal.reason); }, { once: true });
  });
}

export class PacedDriver implements VmiDriver {
  private readonly o: Required<PacedDriverOptions>;
  /** Memory transfers started and finished (for the report). */
  readonly migrations = { started: 0, finished: 0 };

  constructor(o: PacedDriverOptions = {}) {
    this.o = { bootMs: [2000, 4000], receiverMs: [2000, 5000], memoryMs: [20_000, 40_000], seed: 'cloudnet', ...o };
  }

  /** A value in [lo, hi] fixed by `what` and the seed. */
  private draw([lo, hi]: [number, number], what: string): number {
    const h = createHash('sha256').update(`${this.o.seed}/${what}`).digest();
    return lo + (h.readUInt32BE(0) / 0xffffffff) * (hi - lo);
  }

  start(vmi: VmiInstance, signal: AbortSignal): Promise<void> {
    return sleep(this.draw(this.o.bootMs, `boot/${vmi.cluster}/${vmi.namespace}/${vmi.name}`), signal);
  }

  /** The migration proxy's address and node ports as virt-handler publishes them. Nothing listens:
   *  this driver's transfer is a timer, and the bench runs no relay on the path. */
  async listenForMigration(vmi: VmiInstance, migrationID: string): Promise<MigrationEndpoint> {
    const base = 30000 + Math.floor(this.draw([0, 15000], `ports/${migrationID}`)) * 2;
    return { address: '192.0.2.10', ports: { [String(base)]: LIBVIRT_MEMORY_PORT, [String(base + 1)]: LIBVIRT_BLOCK_PORT } };
  }

  prepareReceiver(vmi: VmiInstance, migrationID: string, signal: AbortSignal): Promise<void> {
    return sleep(this.draw(this.o.receiverMs, `receiver/${migrationID}`), signal);
  }

  async stop(): Promise<void> {}

  async migrate(job: MigrationJob, signal: AbortSignal): Promise<void> {
    this.migrations.started++;
    await sleep(this.draw(this.o.memoryMs, `memory/${job.migrationID}`), signal);
    this.migrations.finished++;
  }
}
