// CIDR parsing and normalisation for WireGuard allowed-ips and routes: `wg show` prints prefixes
// with host bits cleared, so desired and actual sets are compared in that canonical form.
import { isIP } from 'node:net';

export interface Cidr {
  family: 4 | 6;
  /** Network address as an unsigned integer (host bits cleared). */
  net: bigint;
  prefix: number;
}

function v4ToBig(addr: string): bigint {
  return addr.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
}

function v6ToBig(addr: string): bigint {
  let a = addr;
  const v4tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (v4tail) {
    const n = v4ToBig(v4tail[1]);
    a = `${a.slice(0, -v4tail[1].length)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = a.includes('::') ? a.split('::') : [a, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g || '0', 16)), 0n);
}

function bigToV4(n: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 0xffn)).join('.');
}

function bigToV6(n: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => ((n >> BigInt(112 - 16 * i)) & 0xffffn).toString(16));
  // Compress the longest run of zero groups, as inet_ntop does.
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** Parses "a.b.c.d/n", "x::y/n" or a bare address (host prefix). Throws on anything else. */
export function parseCidr(text: string): Cidr {
  const [addr, len, ...rest] = text.trim().split('/');
  const family = isIP(addr ?? '');
  if ((family !== 4 && family !== 6) || rest.length) throw new Error(`invalid CIDR: ${text}`);
  const bits = family === 4 ? 32 : 128;
  const prefix = len === undefined ? bits : Number(len);
  if (!/^\d+$/.test(len ?? String(bits)) || prefix > bits) throw new Error(`invalid CIDR prefix: ${text}`);
  const value = family === 4 ? v4ToBig(addr) : v6ToBig(addr);
  const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(bits - prefix);
  return { family, net: value & mask, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${c.family === 4 ? bigToV4(c.net) : bigToV6(c.net)}/${c.prefix}`;
}

/** Canonical text form: host bits cleared, explicit prefix. */
export function normalizeCidr(text: string): string {
  return formatCidr(parseCidr(text));
}

export function isDefaultRoute(text: string): boolean {
  return parseCidr(text).prefix === 0;
}

/** True when the two prefixes share any address. */
export function overlaps(a: string, b: string): boolean {
  const x = parseCidr(a), y = parseCidr(b);
  if (x.family !== y.family) return false;
  const bits = x.family === 4 ? 32 : 128;
  const p = Math.min(x.prefix, y.prefix);
  const shift = BigInt(bits - p);
  return (x.net >> shift) === (y.net >> shift);
}

/** The address part of "198.18.0.1/31" (tunnel addresses are written with their subnet). */
export function addressOf(text: string): string {
  return text.split('/')[0];
}
