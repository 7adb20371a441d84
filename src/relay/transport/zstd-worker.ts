// The sender's compression thread (see zstd-pool.ts): compresses one batch per message with the
// kept zstd context of its level, from and into shared memory the main thread owns, and answers
// with the frame's length. Imports only the batch module: the worker starts in a few ms and holds
// no codec state of its own.
import { parentPort } from 'node:worker_threads';
import { zstdCompressInto } from '../codec/batch.ts';

export interface CompressRequest {
  id: number;
  level: number;
  ops: SharedArrayBuffer;
  opsLen: number;
  out: SharedArrayBuffer;
}

export interface CompressReply {
  id: number;
  /** The frame's length in `out`, or -1 when compression failed (the batch then goes stored). */
  outLen: number;
  /** This thread's CPU time so far, for the stats. */
  cpuMicros: number;
}

parentPort?.on('message', (m: CompressRequest) => {
  let outLen = -1;
  try {
    outLen = zstdCompressInto(new Uint8Array(m.ops, 0, m.opsLen), m.level, new Uint8Array(m.out));
  } catch {
    outLen = -1;
  }
  const cpu = process.threadCpuUsage();
  parentPort!.postMessage({ id: m.id, outLen, cpuMicros: cpu.user + cpu.system } satisfies CompressReply);
});
