// Synthetic QEMU QEVM v3 pre-copy streams for tests and for the benchmark when no recorded
// streams exist: a valid header and configuration, the RAM setup section, several rounds of
// PART sections (later rounds re-send pages with small edits), an END section, device state
// (FULL sections), EOF and a JSON vmdesc. The content mixes text-like, random, zero and duplicate
// pages, deterministically from a seed.

export class Rng {
  private s: number;
  constructor(seed: number) { this.s = (seed >>> 0) || 1; }
  next(): number {
    let x = this.s;
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    this.s = x;
    return x;
  }
  int(n: number): number { return this.next() % n; }
  fill(buf: Buffer, start = 0, end = buf.length): void {
    for (let i = start; i < end; i++) buf[i] = this.next() & 0xff;
  }
}

const WORDS = ['the', 'migration', 'page', 'kernel', 'memory', 'relay', 'cloud', 'network', 'buffer', 'ring', 'vm',
  'process', 'data', 'block', 'write', 'read', 'socket', 'error', 'value', 'cache', '\n', 'int', 'return', '{', '}'];

export interface SyntheticOptions {
  seed?: number;
  pages?: number; // pages in "pc.ram"
  rounds?: number; // pre-copy rounds including the first
  dirtyFraction?: number; // share of pages re-sent per later round
  zeroFraction?: number;
  randomFraction?: number;
  duplicateFraction?: number;
  /** A shared seed for page contents lets two "VMs" hold identical pages (cross-VM dedup). */
  contentSeed?: number;
}

function textPage(rng: Rng, page: Buffer): void {
  let o = 0;
  while (o < page.length) {
    const w = WORDS[rng.int(WORDS.length)];
    for (let i = 0; i < w.length && o < page.length; i++) page[o++] = w.charCodeAt(i);
    if (o < page.length) page[o++] = 0x20;
  }
}

class Out {
  parts: Buffer[] = [];
  u8(v: number): void { this.parts.push(Buffer.from([v])); }
  u16(v: number): void { const b = Buffer.alloc(2); b.writeUInt16BE(v); this.parts.push(b); }
  u32(v: number): void { const b = Buffer.alloc(4); b.writeUInt32BE(v >>> 0); this.parts.push(b); }
  u64(v: number): void { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(v)); this.parts.push(b); }
  str(s: string): void { this.u8(s.length); this.parts.push(Buffer.from(s, 'latin1')); }
  bytes(b: Buffer): void { this.parts.push(Buffer.from(b)); }
  done(): Buffer { return Buffer.concat(this.parts); }
}

export function syntheticQemuStream(opts: SyntheticOptions = {}): Buffer {
  const rng = new Rng(opts.seed ?? 1);
  const content = new Rng(opts.contentSeed ?? opts.seed ?? 1);
  const pages = opts.pages ?? 256;
  const rounds = opts.rounds ?? 3;
  const dirty = opts.dirtyFraction ?? 0.2;
  const zeroF = opts.zeroFraction ?? 0.3;
  const randF = opts.randomFraction ?? 0.1;
  const dupF = opts.duplicateFraction ?? 0.1;
  const vram = 16;
  const mem: Buffer[] = [];
  const isZero: boolean[] = [];
  for (let p = 0; p < pages + vram; p++) {
    const b = Buffer.alloc(4096);
    const r = content.next() / 2 ** 32;
    if (r < zeroF) isZero.push(true);
    else {
      isZero.push(false);
      if (r < zeroF + randF) content.fill(b);
      else if (r < zeroF + randF + dupF && p > 0) mem[content.int(p)].copy(b);
      else textPage(content, b);
    }
    mem.push(b);
  }
  const o = new Out();
  o.u32(0x5145564d); o.u32(3);
  o.u8(0x07); o.u32(13); o.parts.push(Buffer.from('pc-i440fx-7.2'));
  const ramId = 2;
  o.u8(0x01); o.u32(ramId); o.str('ram'); o.u32(0); o.u32(4);
  o.u64((pages + vram) * 4096 + 0x04);
  o.str('pc.ram'); o.u64(pages * 4096);
  o.str('vga.vram'); o.u64(vram * 4096);
  o.u64(0x10); o.u8(0x7e); o.u32(ramId);

  const sendPages = (list: number[], type: number): void => {
    let lastBlock = '';
    const perSection = 64;
    for (let s = 0; s < Math.max(1, Math.ceil(list.length / perSection)); s++) {
      o.u8(type === 0x03 && s === Math.ceil(list.length / perSection) - 1 ? 0x03 : 0x02); o.u32(ramId);
      for (const p of list.slice(s * perSection, (s + 1) * perSection)) {
        const block = p < pages ? 'pc.ram' : 'vga.vram';
        const addr = (p < pages ? p : p - pages) * 4096;
        const cont = block === lastBlock ? 0x20 : 0;
        lastBlock = block;
        if (isZero[p]) {
          o.u64(addr | 0x02 | cont);
          if (!cont) o.str(block);
          o.u8(0);
        } else {
          o.u64(addr | 0x08 | cont);
          if (!cont) o.str(block);
          o.bytes(mem[p]);
        }
      }
      o.u64(0x10); o.u8(0x7e); o.u32(ramId);
    }
  };
  const all = Array.from({ length: pages + vram }, (_, i) => i);
  sendPages(all, rounds === 1 ? 0x03 : 0x02);
  for (let r = 1; r < rounds; r++) {
    const list: number[] = [];
    for (let p = 0; p < pages + vram; p++) {
      if (rng.next() / 2 ** 32 >= dirty) continue;
      list.push(p);
      // Small edits: a few bytes to a few dozen bytes at a random place.
      if (isZero[p] && rng.int(2) === 0) continue;
      isZero[p] = false;
      const at = rng.int(4000);
      const n = 1 + rng.int(64);
      for (let i = 0; i < n; i++) mem[p][at + i] = 0x61 + rng.int(26);
    }
    sendPages(list, r === rounds - 1 ? 0x03 : 0x02);
  }
  // Device state: opaque FULL sections.
  for (let d = 0; d < 4; d++) {
    o.u8(0x04); o.u32(10 + d); o.str(`dev${d}`); o.u32(0); o.u32(1);
    const b = Buffer.alloc(200 + rng.int(2000)); rng.fill(b, 0, b.length >> 1); o.bytes(b);
    o.u8(0x7e); o.u32(10 + d);
  }
  o.u8(0x00);
  const vmdesc = Buffer.from(JSON.stringify({ page_size: 4096, devices: [{ name: 'ram' }] }));
  o.u8(0x06); o.u32(vmdesc.length); o.bytes(vmdesc);
  return o.done();
}
