// Link health probes: a tiny UDP echo protocol between the two gateways.
//
// The responder listens on every address of the gateway (the tunnel address and the public
// underlay address), so one port answers two questions: "does the tunnel carry traffic?" (probe
// the peer's tunnel address) and "is the peer gateway reachable at all?" (probe its public
// endpoint host). Replies carry the responder's WireGuard public key and the peer keys it has
// configured: unauthenticated hints, used only to name a key mismatch in the LinkReady condition,
// never to decide whom to trust.
//
// Wire format (big endian): "CNP1" | type u8 | seq u32 | train u16 | index u16 | count u16 | payload
//   type 1 echo request (padded to ECHO_REQUEST_BYTES), 2 echo reply (payload: JSON {publicKey,
//   peerKeys}, never longer than the request), 3 train packet, 4 train ack (header only).
// Train packets are padded to a fixed size and acknowledged with a header-only reply, so the reply
// spacing at the prober reflects the forward path's bottleneck (packet-pair dispersion) while the
// reverse path carries few bytes.
import { createSocket, type Socket, type RemoteInfo } from 'node:dgram';

const MAGIC = Buffer.from('CNP1');
const HEADER = 15;
const ECHO_REQ = 1, ECHO_REPLY = 2, TRAIN = 3, TRAIN_ACK = 4;

export const DEFAULT_PROBE_PORT = 51821;
/** Echo requests are padded to this size so that the identity reply is never larger (see below). */
export const ECHO_REQUEST_BYTES = 320;

export interface ResponderIdentity {
  publicKey: string;
  peerKeys: string[];
}

export interface EchoReply {
  rttMs: number;
  identity?: ResponderIdentity;
}

function header(type: number, seq: number, train = 0, index = 0, count = 0, size = HEADER): Buffer {
  const b = Buffer.alloc(Math.max(size, HEADER));
  MAGIC.copy(b, 0);
  b.writeUInt8(type, 4);
  b.writeUInt32BE(seq >>> 0, 5);
  b.writeUInt16BE(train, 9);
  b.writeUInt16BE(index, 11);
  b.writeUInt16BE(count, 13);
  return b;
}

function parse(b: Buffer): { type: number; seq: number; train: number; index: number; count: number; payload: Buffer } | undefined {
  if (b.length < HEADER || !b.subarray(0, 4).equals(MAGIC)) return undefined;
  return { type: b.readUInt8(4), seq: b.readUInt32BE(5), train: b.readUInt16BE(9), index: b.readUInt16BE(11), count: b.readUInt16BE(13), payload: b.subarray(HEADER) };
}

function bindSocket(port: number, address?: string): Promise<Socket> {
  const sock = createSocket({ type: 'udp4', reuseAddr: false });
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.bind({ port, ...(address ? { address } : {}) }, () => { sock.off('error', reject); resolve(sock); });
  });
}

/** Answers echo and train probes; `identity` is read per request so a key rotation shows at once. */
export class ProbeResponder {
  readonly #sock: Socket;
  #closed = false;
  private constructor(sock: Socket) { this.#sock = sock; }

  static async listen(port: number, identity: () => ResponderIdentity, address?: string): Promise<ProbeResponder> {
    const sock = await bindSocket(port, address);
    sock.on('error', () => { /* ICMP errors on a connectionless socket: nothing to do */ });
    sock.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
      const m = parse(msg);
      if (!m) return;
      if (m.type === ECHO_REQ) {
        const reply = Buffer.concat([header(ECHO_REPLY, m.seq), Buffer.from(JSON.stringify(identity()))]);
        // Never answer with more bytes than were received: the port faces the WAN, and a bigger
        // reply to a spoofed source would make the gateway a UDP amplifier.
        if (reply.length <= msg.length) sock.send(reply, rinfo.port, rinfo.address);
      } else if (m.type === TRAIN) {
        sock.send(header(TRAIN_ACK, m.seq, m.train, m.index, m.count), rinfo.port, rinfo.address);
      }
    });
    return new ProbeResponder(sock);
  }

  port(): number { return this.#sock.address().port; }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    return new Promise((r) => this.#sock.close(() => r()));
  }
}

interface Pending { resolve: (v: unknown) => void; timer: NodeJS.Timeout }

/** Sends probes from one socket and matches replies by sequence number. */
export class ProbeClient {
  readonly #sock: Socket;
  #seq = Math.floor(Math.random() * 1e9);
  #train = 0;
  readonly #echo = new Map<number, Pending & { sent: bigint }>();
  readonly #trains = new Map<number, { times: bigint[]; size: number }>();

  private constructor(sock: Socket) {
    this.#sock = sock;
    sock.on('error', () => { /* unreachable peers surface as timeouts */ });
    sock.on('message', (msg: Buffer) => {
      const now = process.hrtime.bigint();
      const m = parse(msg);
      if (!m) return;
      if (m.type === ECHO_REPLY) {
        const p = this.#echo.get(m.seq);
        if (!p) return;
        this.#echo.delete(m.seq);
        clearTimeout(p.timer);
        let identity: ResponderIdentity | undefined;
        try { identity = JSON.parse(m.payload.toString('utf8')) as ResponderIdentity; } catch { identity = undefined; }
        p.resolve({ rttMs: Number(now - p.sent) / 1e6, ...(identity ? { identity } : {}) } satisfies EchoReply);
      } else if (m.type === TRAIN_ACK) {
        this.#trains.get(m.train)?.times.push(now);
      }
    });
  }

  static async open(): Promise<ProbeClient> {
    return new ProbeClient(await bindSocket(0));
  }

  /** One echo; resolves undefined after `timeoutMs` without a reply (counted as a loss). */
  echo(host: string, port: number, timeoutMs: number): Promise<EchoReply | undefined> {
    const seq = (this.#seq = (this.#seq + 1) >>> 0);
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.#echo.delete(seq); resolve(undefined); }, timeoutMs);
      this.#echo.set(seq, { resolve: resolve as (v: unknown) => void, timer, sent: process.hrtime.bigint() });
      this.#sock.send(header(ECHO_REQ, seq, 0, 0, 0, ECHO_REQUEST_BYTES), port, host, (err) => {
        if (err) { clearTimeout(timer); this.#echo.delete(seq); resolve(undefined); }
      });
    });
  }

  /**
   * Achievable-throughput estimate from one packet train: `count` back-to-back packets of `size`
   * bytes (bounded: count × size bytes per call), bandwidth = bytes after the first ack / spread of
   * the acks. Returns undefined when fewer than half the acks came back.
   */
  async train(host: string, port: number, count: number, size: number, waitMs: number): Promise<number | undefined> {
    const id = (this.#train = (this.#train + 1) & 0xffff);
    const entry = { times: [] as bigint[], size };
    this.#trains.set(id, entry);
    try {
      for (let i = 0; i < count; i++) {
        const seq = (this.#seq = (this.#seq + 1) >>> 0);
        this.#sock.send(header(TRAIN, seq, id, i, count, size), port, host);
      }
      const deadline = Date.now() + waitMs;
      while (entry.times.length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      const t = entry.times;
      if (t.length < Math.max(2, count / 2)) return undefined;
      const spreadS = Number(t[t.length - 1] - t[0]) / 1e9;
      if (spreadS <= 0) return undefined;
      return ((t.length - 1) * size) / spreadS;
    } finally {
      this.#trains.delete(id);
    }
  }

  close(): Promise<void> {
    for (const p of this.#echo.values()) { clearTimeout(p.timer); p.resolve(undefined); }
    this.#echo.clear();
    return new Promise((r) => this.#sock.close(() => r()));
  }
}

export function median(xs: readonly number[]): number | undefined {
  if (!xs.length) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Rolling window of tunnel probe outcomes. RTT is the minimum of the recent successful samples:
 * the prober runs in a Node event loop on a shared machine, and scheduling delay can only ever
 * add to a sample, so the minimum (as in ping's min and TCP's min_rtt) is the estimator of the
 * path's RTT; the median drifted 10–20% high under load. Loss is
 * the fraction of unanswered probes in the window, and `consecutiveMisses` drives outage
 * detection.
 */
export class ProbeWindow {
  readonly size: number;
  #outcomes: (number | undefined)[] = [];
  #misses = 0;
  #everSucceeded = false;

  constructor(size = 20) { this.size = size; }

  record(rttMs: number | undefined): void {
    // Misses before the link first came up are "connecting", not loss of an established link.
    if (rttMs !== undefined || this.#everSucceeded) this.#outcomes.push(rttMs);
    if (this.#outcomes.length > this.size) this.#outcomes.shift();
    if (rttMs === undefined) this.#misses++;
    else { this.#misses = 0; this.#everSucceeded = true; }
  }

  consecutiveMisses(): number { return this.#misses; }
  everSucceeded(): boolean { return this.#everSucceeded; }
  samples(): number { return this.#outcomes.length; }

  rttMs(): number | undefined {
    const recent = this.#outcomes.filter((x): x is number => x !== undefined).slice(-10);
    return recent.length ? Math.min(...recent) : undefined;
  }

  lossRatio(): number | undefined {
    if (!this.#outcomes.length) return undefined;
    return this.#outcomes.filter((x) => x === undefined).length / this.#outcomes.length;
  }
}
