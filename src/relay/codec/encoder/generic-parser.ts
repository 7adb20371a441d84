// Generic mode: content-defined chunks (cdc.ts), each deduplicated through the shared cache. Used
// for streams of unknown format (multifd channels, unknown QEMU versions), for QEMU's device state
// after RAM, and for the rest of any stream whose parse lost sync.
import { nextChunk } from '../cdc.ts';
import { EFFORT_PASS } from '../adaptive.ts';
import { T_GENERIC_LITERAL } from '../ops.ts';
import type { OpOutput } from './op-output.ts';

/** One chunk of buf[pos, end); -1 when the chunker needs more input to place its boundary. */
export function genericStep(out: OpOutput, buf: Buffer, pos: number, end: number, final: boolean): number {
  // Shedding work (adaptive.ts): no chunk boundaries to find, everything available goes raw.
  if (out.effort === EFFORT_PASS) { out.raw(buf, pos, end, T_GENERIC_LITERAL); return end; }
  const n = nextChunk(buf, pos, end, final);
  if (n === 0) return -1;
  out.chunk(buf, pos, pos + n);
  return pos + n;
}
