// Compares a migrated guest's RAM on both ends at switch-over: the strongest check that a live
// migration (through a relay, a WAN path or QEMU's own encodings) delivered exactly the source's
// memory. The destination must not have started its vCPUs yet (see holdDestination): the source
// sits in postmigrate with its final RAM, the destination paused with what it loaded; any page
// that differs was lost or corrupted on the way (a dirty-tracking miss or a bad stream).
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { QmpClient } from './qmp.ts';

export interface MemoryCheck {
  pages: number;
  pageSize: number;
  /** Guest-physical page numbers that differ (first 32). */
  mismatched: number[];
  mismatchCount: number;
}

/** Keeps a `-incoming` QEMU paused after the load (QMP `stop` during inmigrate clears autostart). */
export async function holdDestination(destination: QmpClient): Promise<void> {
  await destination.execute('stop');
}

/** Dumps [0, bytes) of guest-physical memory from both QEMUs into dir and compares it page by page.
 *  Both files are removed afterwards. Low RAM only: guests up to the 32-bit PCI hole (< 2 GiB). */
export async function compareGuestMemory(
  source: QmpClient,
  destination: QmpClient,
  bytes: number,
  dir: string,
  tag: string,
  pageSize = 4096,
): Promise<MemoryCheck> {
  const a = join(dir, `${tag}.src.mem`);
  const b = join(dir, `${tag}.dst.mem`);
  try {
    await Promise.all([
      source.execute('pmemsave', { val: 0, size: bytes, filename: a }),
      destination.execute('pmemsave', { val: 0, size: bytes, filename: b }),
    ]);
    return await compareMemoryFiles(a, b, pageSize);
  } finally {
    await Promise.all([rm(a, { force: true }), rm(b, { force: true })]);
  }
}

export async function compareMemoryFiles(a: string, b: string, pageSize: number): Promise<MemoryCheck> {
  const chunk = pageSize * 1024;
  const ra = createReadStream(a, { highWaterMark: chunk })[Symbol.asyncIterator]();
  const rb = createReadStream(b, { highWaterMark: chunk })[Symbol.asyncIterator]();
  const mismatched: number[] = [];
  let mismatchCount = 0;
  let pages = 0;
  let bufA = Buffer.alloc(0);
  let bufB = Buffer.alloc(0);
  for (;;) {
    if (bufA.length < pageSize) {
      const n = await ra.next();
      if (!n.done) bufA = Buffer.concat([bufA, n.value as Buffer]);
    }
    if (bufB.length < pageSize) {
      const n = await rb.next();
      if (!n.done) bufB = Buffer.concat([bufB, n.value as Buffer]);
    }
    const whole = Math.floor(Math.min(bufA.length, bufB.length) / pageSize);
    if (whole === 0) break;
    for (let i = 0; i < whole; i++) {
      const o = i * pageSize;
      if (bufA.compare(bufB, o, o + pageSize, o, o + pageSize) !== 0) {
        mismatchCount++;
        if (mismatched.length < 32) mismatched.push(pages);
      }
      pages++;
    }
    bufA = bufA.subarray(whole * pageSize);
    bufB = bufB.subarray(whole * pageSize);
  }
  if (bufA.length !== bufB.length) throw new Error(`memory dumps differ in length (${a}, ${b})`);
  return { pages, pageSize, mismatched, mismatchCount };
}
