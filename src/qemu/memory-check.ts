// Compares a migrated guest's RAM on both ends at switch-over, and can restore pages the migration
// lost: the strongest end-to-end check that a live migration (through a relay, a WAN path or
// QEMU's own encodings) delivered exactly the source's memory.
//
// Both guests run with file-backed RAM (GuestOptions.ramFile, a shared mapping on tmpfs). At
// switch-over the source sits in postmigrate with its final RAM and the destination is held paused
// (holdDestination), so both files are stable; any page that differs was lost or corrupted on the
// way. Why repair exists: QEMU before 9.0 loses guest writes during TCG migrations (its dirty-bitmap
// sync fast path does not reset the TCG TLB's dirty state; fixed upstream by commit 03bfc2188f,
// "physmem: Fix migration dirty bitmap coherency with TCG memory access"). Debian 12 ships QEMU 7.2,
// and under TCG the lost kernel writes surface as guest panics after the switch-over. KubeVirt runs
// on KVM, whose dirty logging does not have this bug, so the test bed restores those pages from the
// paused source and reports how many it restored; the relay's own exactness is checked separately
// (stream hashes).
import { open } from 'node:fs/promises';
import type { QmpClient } from './qmp.ts';

export interface MemoryCheck {
  pages: number;
  pageSize: number;
  /** Page indices (RAM file offset / pageSize) that differed, first 32. */
  mismatched: number[];
  mismatchCount: number;
  /** Pages copied from the source into the destination (repair mode). */
  repaired: number;
}

/** Keeps a `-incoming` QEMU paused after the load (QMP `stop` during inmigrate clears autostart). */
export async function holdDestination(destination: QmpClient): Promise<void> {
  await destination.execute('stop');
}

const CHUNK_PAGES = 1024;

/** Compares two RAM files page by page; with repair, writes each differing source page into the
 *  destination file (both guests must be paused). */
export async function checkGuestRam(sourceFile: string, destinationFile: string, o: { repair?: boolean; pageSize?: number } = {}): Promise<MemoryCheck> {
  const pageSize = o.pageSize ?? 4096;
  const src = await open(sourceFile, 'r');
  const dst = await open(destinationFile, o.repair ? 'r+' : 'r');
  try {
    const [a, b] = await Promise.all([src.stat(), dst.stat()]);
    if (a.size !== b.size) throw new Error(`guest RAM files differ in size (${sourceFile} ${a.size}, ${destinationFile} ${b.size})`);
    const bufA = Buffer.allocUnsafe(pageSize * CHUNK_PAGES);
    const bufB = Buffer.allocUnsafe(pageSize * CHUNK_PAGES);
    const mismatched: number[] = [];
    let mismatchCount = 0;
    let repaired = 0;
    for (let offset = 0; offset < a.size; offset += bufA.length) {
      const len = Math.min(bufA.length, a.size - offset);
      await Promise.all([src.read(bufA, 0, len, offset), dst.read(bufB, 0, len, offset)]);
      for (let p = 0; p < len; p += pageSize) {
        if (bufA.compare(bufB, p, p + pageSize, p, p + pageSize) === 0) continue;
        const page = (offset + p) / pageSize;
        mismatchCount++;
        if (mismatched.length < 32) mismatched.push(page);
        if (o.repair) {
          await dst.write(bufA, p, pageSize, offset + p);
          repaired++;
        }
      }
    }
    return { pages: Math.ceil(a.size / pageSize), pageSize, mismatched, mismatchCount, repaired };
  } finally {
    await Promise.all([src.close(), dst.close()]);
  }
}
