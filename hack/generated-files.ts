// Writes (or, with --check, only compares) a set of generated files: the one loop behind every
// `gen:*` script, so "stale" means the same thing for all of them and tests can call --check.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

function current(path: string): string | undefined {
  try { return readFileSync(path, 'utf8'); } catch { return undefined; }
}

/** Writes each [repo-relative path, content] that differs; exit code 1 under --check if any does. */
export function syncGenerated(repoRoot: string, files: Iterable<[string, string]>, opts: { regenerate: string; upToDate: string }): void {
  const check = process.argv.includes('--check');
  const stale: string[] = [];
  for (const [path, content] of files) {
    const abs = join(repoRoot, path);
    if (current(abs) === content) continue;
    stale.push(path);
    if (!check) {
      mkdirSync(dirname(abs), { recursive: true });
      writeFileSync(abs, content);
    }
  }
  if (check && stale.length) {
    console.error(`stale generated files (run ${opts.regenerate}):\n  ${stale.join('\n  ')}`);
    process.exitCode = 1;
  } else {
    console.log(stale.length ? `wrote ${stale.join(', ')}` : opts.upToDate);
  }
}
