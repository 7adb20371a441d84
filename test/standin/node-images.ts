// What the node stand-in knows of images: the entrypoint and working directory each image's
// manifest (Dockerfile) names, mapped to local files, since nothing is pulled. Only an image the
// stand-in knows can run; any other leaves its Pod waiting with ErrImagePull, as an unpullable
// image does.
import { realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface LocalImage {
  /** The image's files: local paths shown (read-only) at the image's paths in the container. */
  files: Array<{ source: string; target: string; kind: 'dir' | 'file' }>;
  /** The image's ENTRYPOINT (paths inside the container). */
  entrypoint: string[];
  /** Its CMD (used when the container sets no args). */
  cmd: string[];
  workingDir: string;
}

/**
 * The Dockerfile's images: /app holds package.json, node_modules and the program, ENTRYPOINT
 * ["node", "dist/cli.js"] in WORKDIR /app. Locally the same program is src/cli.ts (dist/ is tsc's
 * output of it), run by the pinned Node of node_modules.
 */
function cloudnetImage(): LocalImage {
  return {
    files: [
      { source: join(repoRoot, 'src'), target: '/app/src', kind: 'dir' },
      { source: join(repoRoot, 'package.json'), target: '/app/package.json', kind: 'file' },
      // node_modules may be a symlink (worktrees share one): show what it points to.
      { source: realpathSync(join(repoRoot, 'node_modules')), target: '/app/node_modules', kind: 'dir' },
    ],
    entrypoint: ['/app/node_modules/node/bin/node', '/app/src/cli.ts'],
    cmd: ['--help'],
    workingDir: '/app',
  };
}
const CLOUDNET = cloudnetImage();

const KNOWN: Array<{ repository: RegExp; image: LocalImage }> = [
  { repository: /^(?:[\w.-]+(?::\d+)?\/)?cloudnet\/(?:operator|gateway)$/, image: CLOUDNET },
];

/** The local stand-in for `ref` (repository[:tag][@digest]), if the stand-in knows the image. */
export function localImage(ref: string): LocalImage | undefined {
  const repository = ref.replace(/@.*$/, '').replace(/:[\w.-]+$/, '');
  return KNOWN.find((k) => k.repository.test(repository))?.image;
}

/** The kubelet's rule: command replaces ENTRYPOINT, args replace CMD. */
export function containerArgv(img: LocalImage, command: string[] | undefined, args: string[] | undefined): string[] {
  if (command?.length) return [...command, ...(args ?? [])];
  return [...img.entrypoint, ...(args ?? img.cmd)];
}

/** $(VAR) expansion of command and args (kubelet expansion.MappingFuncFor): $$ escapes, unknown names stay. */
export function expand(s: string, env: Record<string, string>): string {
  return s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name: string | undefined) => (m === '$$' ? '$' : name !== undefined && name in env ? env[name] : m));
}
