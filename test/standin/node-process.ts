// The node stand-in's container runtime: one container = one local process, started the way a
// container runtime would start it, minus the image. The process gets
//  - its own mount namespace (unshare -m) and a root of its own (chroot) that holds the host's
//    /usr and /etc read-only (the base image), the image's own files at the image's paths
//    (node-images.ts: the program, its node_modules and Node), a private /tmp, /proc, and a /dev
//    with only null, zero, full, random, urandom;
//  - the Pod's volumes bind-mounted at the container's mountPaths (read-only where the manifest
//    says so), block volumes at their devicePaths (a loop device, a real block device);
//  - the Pod's env (and nothing of the stand-in's own environment but PATH), its working directory;
//  - the node's network namespace (ip netns exec), when the node has one.
// Command and args are exactly the manifest's (after $(VAR) expansion, as the kubelet does); only
// the image's entrypoint is looked up locally (node-images.ts). Needs root (mount, chroot).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';

export interface Mount {
  /** Host path (a directory, a file, or a block device). */
  source: string;
  /** Path inside the container. */
  target: string;
  readOnly: boolean;
  /** A file or device is bind-mounted on a file, a directory on a directory. */
  kind: 'dir' | 'file';
}

export interface ContainerProcessSpec {
  /** Scratch directory of this container (its root lives below it). */
  dir: string;
  /** The image's files (read-only), mounted before the Pod's volumes. */
  imageFiles: Array<{ source: string; target: string; kind: 'dir' | 'file' }>;
  argv: string[];
  env: Record<string, string>;
  workingDir: string;
  mounts: Mount[];
  netns?: string;
}

/** Host directories every container sees read-only (the base image: libc, sh, coreutils). */
const HOST_DIRS = ['/usr', '/etc'];
const DEVICES = ['null', 'zero', 'full', 'random', 'urandom'];

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The shell script that builds the container's root inside the new mount namespace and execs the command. */
export function rootScript(spec: ContainerProcessSpec, root: string): string {
  const lines = ['set -e'];
  const bind = (src: string, dst: string, ro: boolean) => {
    lines.push(`mount --bind ${q(src)} ${q(dst)}`);
    if (ro) lines.push(`mount -o remount,bind,ro ${q(dst)}`);
  };
  for (const d of HOST_DIRS) bind(d, root + d, true);
  lines.push(`mount -t proc proc ${q(`${root}/proc`)} 2>/dev/null || mount --rbind /proc ${q(`${root}/proc`)}`);
  lines.push(`mount -t tmpfs -o mode=755,size=1m devtmp ${q(`${root}/dev`)}`);
  for (const d of DEVICES) lines.push(`touch ${q(`${root}/dev/${d}`)}`, `mount --bind /dev/${d} ${q(`${root}/dev/${d}`)}`);
  lines.push(`ln -s /proc/self/fd ${q(`${root}/dev/fd`)}`);
  for (const m of [...spec.imageFiles.map((f) => ({ ...f, readOnly: true })), ...spec.mounts]) {
    const dst = root + m.target;
    lines.push(m.kind === 'dir' ? `mkdir -p ${q(dst)}` : `mkdir -p ${q(dst.slice(0, dst.lastIndexOf('/')) || '/')} && touch ${q(dst)}`);
    bind(m.source, dst, m.readOnly);
  }
  lines.push(`cd ${q(root)}`);
  // chroot, then the working directory, then exactly the container's command.
  lines.push(`exec chroot ${q(root)} /bin/sh -c 'cd "$0" && exec "$@"' ${q(spec.workingDir)} "$@"`);
  return lines.join('\n');
}

/** Prepares the container's root directory skeleton (empty mount points and the usual symlinks). */
function makeRoot(root: string): void {
  rmSync(root, { recursive: true, force: true });
  for (const d of [...HOST_DIRS, '/proc', '/dev', '/tmp']) mkdirSync(root + d, { recursive: true });
  for (const [link, to] of [['bin', 'usr/bin'], ['sbin', 'usr/sbin'], ['lib', 'usr/lib'], ['lib64', 'usr/lib64']]) symlinkSync(to, join(root, link));
}

export function startContainerProcess(spec: ContainerProcessSpec): ChildProcess {
  const root = join(spec.dir, 'root');
  makeRoot(root);
  const inner = ['unshare', '--mount', '--propagation', 'private', '--', '/bin/sh', '-c', rootScript(spec, root), 'container', ...spec.argv];
  const argv = spec.netns ? ['ip', 'netns', 'exec', spec.netns, ...inner] : inner;
  return spawn(argv[0], argv.slice(1), {
    env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', ...spec.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group: the stand-in signals the whole container
  });
}
