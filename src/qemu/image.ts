// Where the guest built by hack/build-guest.sh lives, and how a workload is selected on the guest
// kernel's command line (guest/init turns cloudnet.<key>=<value> into --<key>=<value>).
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export function cacheDir(): string {
  return process.env.CLOUDNET_CACHE ?? join(repoRoot, '.cache');
}

export interface GuestImage {
  kernel: string;
  initrd: string;
  /** Static workload binaries (same as in the initramfs), runnable on the host for reference results. */
  binDir: string;
}

export function guestImage(dir = join(cacheDir(), 'guest')): GuestImage {
  const img = { kernel: join(dir, 'vmlinuz'), initrd: join(dir, 'initrd.cpio.gz'), binDir: join(dir, 'bin') };
  for (const f of [img.kernel, img.initrd]) {
    if (!existsSync(f)) throw new Error(`guest image file ${f} is missing: run hack/build-guest.sh (hack/setup.sh does)`);
  }
  return img;
}

export type WorkloadName = 'idle' | 'memwriter' | 'sqlload' | 'diskwriter';

export interface WorkloadSpec {
  /** One workload, or several run side by side. */
  name: WorkloadName | WorkloadName[];
  /** Options of the workload programs, e.g. { 'wss-mb': 64, 'dirty-mbps': 12, mix: 'zero:20,text:80' }. */
  params?: Record<string, string | number>;
  /** Heartbeat interval (default 100 ms). */
  heartbeatMs?: number;
}

/** The guest kernel command line: fast, quiet boot on ttyS0, then the workload selection. */
export function kernelCmdline(w: WorkloadSpec = { name: 'idle' }, extra = ''): string {
  const names = Array.isArray(w.name) ? w.name.join(',') : w.name;
  const words = ['console=ttyS0', 'quiet', 'panic=-1', `cloudnet.workload=${names}`];
  if (w.heartbeatMs) words.push(`cloudnet.hb_ms=${w.heartbeatMs}`);
  for (const [k, v] of Object.entries(w.params ?? {})) {
    const value = String(v);
    if (!/^[A-Za-z0-9-]+$/.test(k) || /\s/.test(value)) throw new Error(`bad workload parameter ${k}=${value}`);
    words.push(`cloudnet.${k.replace(/-/g, '_')}=${value}`);
  }
  if (extra) words.push(extra);
  return words.join(' ');
}
