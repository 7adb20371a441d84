// Starting and stopping QEMU guests (TCG only: KVM hangs on the project's machines).
//
// Each QEMU runs in its own process group, optionally inside a network namespace
// (`ip netns exec <ns> ...`), under `setpriv --pdeathsig KILL` so that it dies with this process
// even when this process is SIGKILLed; an 'exit' hook kills whatever is still running otherwise.
// The serial console is QEMU's stdout (chardev stdio), read here line by line with host
// timestamps and copied to a log file; QMP is a unix socket in the guest's work directory (unix
// sockets live in the file system, so the host reaches them whatever the network namespace).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { logger } from '../util/log.ts';
import { cacheDir, guestImage, kernelCmdline, type WorkloadSpec } from './image.ts';
import { QmpClient } from './qmp.ts';
import { SerialConsole } from './serial.ts';

const log = logger('qemu');

export interface GuestDisk {
  path: string;
  format: 'raw' | 'qcow2';
  /** Drive id (node name) for QMP block commands; default disk<index>. */
  id?: string;
  /** Default 'writeback': works on tmpfs (no O_DIRECT) and stays coherent for two QEMUs on one host
   *  sharing the image during a migration (the source flushes at switchover). */
  cache?: 'none' | 'writeback' | 'writethrough' | 'directsync' | 'unsafe';
  readOnly?: boolean;
}

export interface GuestOptions {
  name: string;
  /** Holds the QMP socket, the serial log and QEMU's own log. Created by the caller. */
  workDir: string;
  memoryMiB?: number;
  cpus?: number;
  /** QEMU machine type; both ends of a migration must use the same one. Default q35 (as KubeVirt). */
  machine?: string;
  kernel?: string;
  initrd?: string;
  workload?: WorkloadSpec;
  /** Full kernel command line; overrides the one derived from `workload`. */
  append?: string;
  disks?: GuestDisk[];
  /** Run inside this network namespace. */
  netns?: string;
  /** Start as a migration destination (`-incoming defer`, then migrate-incoming over QMP). */
  incoming?: boolean;
  /** CPU list for taskset, e.g. "1", to pin a guest for fairer benchmarks. */
  cpuList?: string;
  serialLog?: string;
  extraArgs?: string[];
  qemuBinary?: string;
  /** Back guest RAM with this file (a shared mapping, best on tmpfs) so the host can read and
   *  patch the guest's memory while it is paused (memory-check.ts). Removed when the guest stops. */
  ramFile?: string;
  /** Wait for the guest's "CLOUDNET READY" line before resolving (not for destinations). Default true. */
  waitReady?: boolean;
  bootTimeoutMs?: number;
}

export interface GuestExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const live = new Map<number, ChildProcess>();
/** RAM files of guests not stopped yet: removed on exit too (they hold guest-sized tmpfs memory). */
const ramFiles = new Set<string>();
let hookInstalled = false;

function installExitHook(): void {
  if (hookInstalled) return;
  hookInstalled = true;
  process.on('exit', () => {
    for (const pid of live.keys()) killGroup(pid, 'SIGKILL');
    for (const f of ramFiles) rmSync(f, { force: true });
  });
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/**
 * The QEMU tree to run instead of the system's qemu-system-x86_64: CLOUDNET_QEMU_ROOT's (a tree
 * extracted from Debian packages); when that is unset, the newest tree hack/fetch-qemu.sh put into
 * the cache (bookworm-backports' QEMU 10); when it is set but empty, none (the system's QEMU).
 * Why the cache by default: the system's QEMU 7.2 loses guest writes in TCG live migrations (fixed
 * in QEMU 9.0, see hack/panic-repro.ts), and destination guests then panic now and then after the
 * switch-over. `npm test` and `npm run demo` set CLOUDNET_QEMU_ROOT (hack/qemu-env.sh); the
 * benchmarks (`npm run bench:*`) did not, so their migrations ran on QEMU 7.2.
 */
export function qemuTree(env: NodeJS.ProcessEnv = process.env): { binary: string; dataDirs: string[] } | undefined {
  const root = env.CLOUDNET_QEMU_ROOT ?? cachedQemuRoot(env.CLOUDNET_CACHE ?? cacheDir());
  // Firmware search path: the tree's own ROMs and its SeaBIOS (bios-256k.bin), in that order.
  return root ? { binary: join(root, 'usr/bin/qemu-system-x86_64'), dataDirs: [join(root, 'usr/share/qemu'), join(root, 'usr/share/seabios')] } : undefined;
}

/** The newest QEMU tree hack/fetch-qemu.sh extracted into `<cache>/qemu-bpo/<version>/`, if any. */
export function cachedQemuRoot(cache: string): string | undefined {
  const dir = join(cache, 'qemu-bpo');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return undefined; // nothing fetched
  }
  const trees = names.filter((n) => !n.endsWith('.tmp') && existsSync(join(dir, n, 'usr/bin/qemu-system-x86_64')))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  return trees.length ? join(dir, trees[trees.length - 1]) : undefined;
}

/** The QEMU a guest runs: its own qemuBinary (no extra firmware path), else qemuTree()'s, else
 *  the system's. */
function qemuFor(o: Pick<GuestOptions, 'qemuBinary'>, env: NodeJS.ProcessEnv = process.env): { binary: string; dataDirs: string[] } {
  if (o.qemuBinary) return { binary: o.qemuBinary, dataDirs: [] };
  return qemuTree(env) ?? { binary: 'qemu-system-x86_64', dataDirs: [] };
}

/** The QEMU the test bed runs (qemuTree()'s, else the system's): its --version line. */
export function qemuVersion(env: NodeJS.ProcessEnv = process.env): string {
  const { binary } = qemuFor({}, env);
  try {
    return execFileSync(binary, ['--version'], { encoding: 'utf8' }).split('\n')[0].trim();
  } catch (err) {
    return `${binary}: ${err instanceof Error ? err.message : String(err)}`;
  }
}

export function qemuArgs(o: GuestOptions, qmpPath: string): string[] {
  const img = o.kernel && o.initrd ? { kernel: o.kernel, initrd: o.initrd } : guestImage();
  const args = [
    '-name', o.name,
    '-accel', 'tcg',
    '-machine', `${o.machine ?? 'q35'}${o.ramFile ? ',memory-backend=ram0' : ''}`,
    '-m', String(o.memoryMiB ?? 256),
    '-smp', String(o.cpus ?? 1),
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-kernel', o.kernel ?? img.kernel,
    '-initrd', o.initrd ?? img.initrd,
    '-append', o.append ?? kernelCmdline(o.workload),
    '-chardev', 'stdio,id=serial0,signal=off',
    '-serial', 'chardev:serial0',
    '-qmp', `unix:${qmpPath},server=on,wait=off`,
  ];
  (o.disks ?? []).forEach((d, i) => {
    const id = d.id ?? `disk${i}`;
    const ro = d.readOnly ? ',read-only=on' : '';
    args.push('-drive', `file=${d.path},format=${d.format},if=none,id=${id},cache=${d.cache ?? 'writeback'}${ro}`);
    args.push('-device', `virtio-blk-pci,drive=${id},id=${id}-dev`);
  });
  if (o.ramFile) {
    args.push('-object', `memory-backend-file,id=ram0,size=${o.memoryMiB ?? 256}M,mem-path=${o.ramFile},share=on`);
  }
  if (o.incoming) args.push('-incoming', 'defer');
  for (const dir of qemuFor(o).dataDirs) args.push('-L', dir);
  args.push(...(o.extraArgs ?? []));
  return args;
}

export class QemuGuest {
  readonly name: string;
  readonly pid: number;
  readonly qmp: QmpClient;
  readonly serial: SerialConsole;
  readonly qemuLog: string;
  readonly exited: Promise<GuestExit>;
  /** The file behind guest RAM, when started with ramFile. */
  ramFile?: string;
  private done = false;

  constructor(name: string, pid: number, qmp: QmpClient, serial: SerialConsole, qemuLog: string, exited: Promise<GuestExit>) {
    this.name = name;
    this.pid = pid;
    this.qmp = qmp;
    this.serial = serial;
    this.qemuLog = qemuLog;
    this.exited = exited.then((e) => {
      this.done = true;
      return e;
    });
  }

  get running(): boolean {
    return !this.done;
  }

  /** Asks QEMU to quit, then kills its process group if it has not exited within graceMs. */
  async stop(graceMs = 3000): Promise<void> {
    if (!this.done) {
      try {
        await this.qmp.execute('quit', undefined, { timeoutMs: graceMs });
      } catch {
        // QEMU may exit before it answers, or be wedged: the kill below covers both
      }
      const timer = setTimeout(() => killGroup(this.pid, 'SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    this.cleanup();
  }

  async kill(): Promise<void> {
    if (!this.done) killGroup(this.pid, 'SIGKILL');
    await this.exited;
    this.cleanup();
  }

  private cleanup(): void {
    killGroup(this.pid, 'SIGKILL'); // anything left in the group
    this.qmp.close();
    this.serial.close();
    if (this.ramFile) {
      rmSync(this.ramFile, { force: true });
      ramFiles.delete(this.ramFile);
    }
  }
}

/** Starts a guest and connects QMP; unless it is a destination, also waits for its boot. */
export async function startGuest(o: GuestOptions): Promise<QemuGuest> {
  installExitHook();
  const qmpPath = join(o.workDir, `${o.name}.qmp`);
  const qemuLog = join(o.workDir, `${o.name}.qemu.log`);
  const serial = new SerialConsole(o.serialLog ?? join(o.workDir, `${o.name}.serial.log`));
  const cmd: string[] = [];
  if (o.netns) cmd.push('ip', 'netns', 'exec', o.netns);
  cmd.push('setpriv', '--pdeathsig', 'KILL');
  if (o.cpuList) cmd.push('taskset', '-c', o.cpuList);
  cmd.push(qemuFor(o).binary, ...qemuArgs(o, qmpPath));
  log.debug('starting guest', { guest: o.name, cmd: cmd.join(' ') });
  if (o.ramFile) ramFiles.add(o.ramFile);

  const child = spawn(cmd[0], cmd.slice(1), { detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  const stderrLog = createWriteStream(qemuLog, { flags: 'a' });
  let stderrTail = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderrLog.write(d);
    stderrTail = (stderrTail + d.toString()).slice(-4000);
  });
  child.stdout?.on('data', (d: Buffer) => serial.feed(d));
  const exited = new Promise<GuestExit>((resolve) => {
    child.once('exit', (code, signal) => {
      if (child.pid !== undefined) live.delete(child.pid);
      stderrLog.end();
      resolve({ code, signal });
    });
    child.once('error', (err) => {
      stderrTail += `\n${err.message}`;
      stderrLog.end();
      resolve({ code: null, signal: null });
    });
  });
  if (child.pid === undefined) {
    const e = await exited;
    throw new Error(`cannot start ${cmd[0]} (${JSON.stringify(e)}): ${stderrTail.trim()} — is qemu-system-x86 installed (hack/setup.sh)?`);
  }
  const pid = child.pid;
  live.set(pid, child);

  const failEarly = exited.then((e) => {
    throw new Error(`QEMU ${o.name} exited (${e.code ?? e.signal}) during start: ${stderrTail.trim()}`);
  });
  failEarly.catch(() => undefined);
  let qmp: QmpClient;
  try {
    qmp = await Promise.race([QmpClient.connect(qmpPath, { timeoutMs: 20_000 }), failEarly]);
  } catch (err) {
    killGroup(pid, 'SIGKILL');
    await exited;
    serial.close();
    if (o.ramFile) rmSync(o.ramFile, { force: true });
    throw err;
  }
  const guest = new QemuGuest(o.name, pid, qmp, serial, qemuLog, exited);
  guest.ramFile = o.ramFile;
  if (!o.incoming && o.waitReady !== false) {
    try {
      await Promise.race([serial.waitFor(/CLOUDNET READY/, o.bootTimeoutMs ?? 90_000), failEarly]);
    } catch (err) {
      await guest.kill();
      throw err;
    }
  }
  return guest;
}
