// virt-handler's migration proxy with TLS (KubeVirt's default, migrations.disableTLS false): on
// the source node QEMU's connection is taken in locally and carried over TLS to the target node's
// proxy port, where the target virt-handler verifies the source's certificate and hands the bytes
// to the target QEMU (pkg/virt-handler/migration-proxy: both ends present their node certificate,
// each verifies the other against its cluster's kubevirt-ca bundle, which holds the peer
// cluster's CA only if the orchestrator exchanged them). Played by socat in the node's network
// namespace, one process per direction and port, forking per connection (NBD mirrors open one each).
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nsSpawn } from '../env/netns.ts';

/** A node's migration TLS material: its certificate and key, and the bundle it trusts (kubevirt-ca). */
export interface NodeTls {
  cert: string;
  key: string;
  trust: string;
}

export interface HostPort {
  host: string;
  port: number;
}

let seq = 0;

function files(dir: string, tls: NodeTls): { cert: string; key: string; ca: string } {
  const d = join(dir, `tls-${process.pid}-${++seq}`);
  mkdirSync(d, { recursive: true, mode: 0o700 });
  const f = { cert: join(d, 'cert.pem'), key: join(d, 'key.pem'), ca: join(d, 'ca.pem') };
  writeFileSync(f.cert, tls.cert);
  writeFileSync(f.key, tls.key, { mode: 0o600 });
  writeFileSync(f.ca, tls.trust);
  return f;
}

export class MigrationProxy {
  private readonly procs: ChildProcess[] = [];
  /** What socat reported (handshake failures: an untrusted peer certificate, for one). */
  log = '';

  private async spawn(netns: string, args: string[], listenPort: number): Promise<void> {
    const p = nsSpawn(netns, 'socat', ['-d', '-d', ...args], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    this.procs.push(p);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`migration proxy did not listen on ${listenPort} within 10 s: ${this.log.slice(-500)}`)), 10_000);
      p.stderr!.on('data', (c: Buffer) => {
        this.log = (this.log + c.toString()).slice(-8000);
        if (/listening on/.test(this.log)) { clearTimeout(timer); resolve(); }
      });
      p.once('error', (e) => { clearTimeout(timer); reject(e); });
      p.once('exit', (code) => { clearTimeout(timer); reject(new Error(`migration proxy exited (${code}): ${this.log.slice(-500)}`)); });
    });
  }

  /** Target node: TLS on `listen` (the published node port), verified, to the local QEMU at `to`. */
  async target(netns: string, listen: HostPort, to: HostPort, tls: NodeTls, dir: string): Promise<void> {
    const f = files(dir, tls);
    await this.spawn(netns, [
      `OPENSSL-LISTEN:${listen.port},bind=${listen.host},reuseaddr,fork,cert=${f.cert},key=${f.key},cafile=${f.ca},verify=1`,
      `TCP:${to.host}:${to.port}`,
    ], listen.port);
  }

  /** Source node: QEMU connects to `listen` (loopback); carried over TLS to the target's node port. */
  async source(netns: string, listen: HostPort, to: HostPort, tls: NodeTls, dir: string): Promise<void> {
    const f = files(dir, tls);
    await this.spawn(netns, [
      `TCP-LISTEN:${listen.port},bind=${listen.host},reuseaddr,fork`,
      `OPENSSL:${to.host}:${to.port},cert=${f.cert},key=${f.key},cafile=${f.ca},verify=1`,
    ], listen.port);
  }

  stop(): void {
    for (const p of this.procs) if (p.exitCode === null && p.signalCode === null && p.pid) {
      try { process.kill(-p.pid, 'SIGKILL'); } catch { p.kill('SIGKILL'); }
    }
  }
}
