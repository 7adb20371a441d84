// The target volume: a raw file (created sparse at the source's size) or an existing file or block
// device. Writes are synchronous pwrite calls: the agent applies requests strictly in order, and a
// failed write must surface as that request's error, not later.
import crypto from 'node:crypto';
import { closeSync, createReadStream, existsSync, fdatasyncSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { PAGE } from './extents.ts';
import { PageIndex, pageKey } from './index-file.ts';

export function volumeSize(path: string): number {
  const fd = openSync(path, 'r');
  try {
    const st = fstatSync(fd);
    if (st.isBlockDevice()) return Number(execFileSync('blockdev', ['--getsize64', path], { encoding: 'utf8' }).trim());
    return st.size;
  } finally {
    closeSync(fd);
  }
}

export class Volume {
  readonly path: string;
  readonly bytes: number;
  readonly fd: number;
  /** True when the file did not exist (or was empty) and was created all-zero. */
  readonly fresh: boolean;

  constructor(path: string, bytes: number, opts: { readOnly?: boolean } = {}) {
    this.path = path;
    const existed = existsSync(path) && volumeSize(path) > 0;
    this.fd = openSync(path, opts.readOnly ? 'r' : existed ? 'r+' : 'w+');
    const size = existed ? volumeSize(path) : 0;
    // A block device may be larger than the source disk (provisioners round sizes up): the disk
    // is its first `bytes`. A file must have exactly the disk's size (KubeVirt's disk.img).
    const block = existed && fstatSync(this.fd).isBlockDevice();
    if (!existed && !opts.readOnly) ftruncateSync(this.fd, bytes);
    else if (block ? size < bytes : size !== bytes) {
      closeSync(this.fd);
      throw new Error(`volume ${path} has ${size} bytes, the source disk has ${bytes}`);
    }
    this.bytes = bytes;
    this.fresh = !existed;
  }

  write(offset: number, data: Uint8Array): void {
    if (offset < 0 || offset + data.length > this.bytes) throw Object.assign(new Error(`write [${offset}, +${data.length}) beyond the volume`), { code: 'EINVAL' });
    let done = 0;
    while (done < data.length) done += writeSync(this.fd, data, done, data.length - done, offset + done);
  }

  read(offset: number, length: number, into?: Buffer): Buffer {
    const buf = into ?? Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, buf, done, length - done, offset + done);
      if (n === 0) {
        buf.fill(0, done, length);
        break;
      }
      done += n;
    }
    return buf;
  }

  sync(): void {
    fdatasyncSync(this.fd);
  }

  /** Builds the index from the volume's content (the truth after a crash). */
  scanIndex(): PageIndex {
    const idx = new PageIndex(this.bytes);
    const chunk = Buffer.alloc(1 << 20);
    for (let off = 0; off < this.bytes; off += chunk.length) {
      const n = Math.min(chunk.length, this.bytes - off);
      this.read(off, n, chunk);
      for (let i = 0; i < n; i += PAGE) idx.set((off + i) / PAGE, pageKey(chunk.subarray(i, i + PAGE)));
    }
    return idx;
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** SHA-256 of a whole file or block device, streamed. */
export function sha256File(path: string, bytes?: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = crypto.createHash('sha256');
    const s = createReadStream(path, bytes !== undefined ? { start: 0, end: bytes - 1, highWaterMark: 1 << 20 } : { highWaterMark: 1 << 20 });
    s.on('data', (d) => h.update(d));
    s.on('error', reject);
    s.on('end', () => resolve(h.digest('hex')));
  });
}
