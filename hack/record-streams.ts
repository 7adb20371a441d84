// Records real QEMU 7.2 pre-copy migration streams of the CloudNet guest workloads into
// ${CLOUDNET_CACHE}/streams/<name>.qemu (+ <name>.json with the workload, QEMU's figures and a
// sha256), for the relay's codec tests and benchmarks. Each stream is captured on its way to a
// real destination QEMU through a recording TCP tee on loopback, so every recording is known to
// load; "-rounds" recordings cap QEMU's bandwidth so a dirtying guest needs many pre-copy rounds
// (the re-sent pages that XOR deltas exploit). idle-b is a second boot of the idle guest,
// recorded through exec: into a file, for cross-VM ("the other side already has it") tests.
//
// usage: node hack/record-streams.ts [--only name,name] [--force] [--out dir]
// Existing recordings are kept unless --force. See guest/README.md for the list.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cacheDir, kernelCmdline, type WorkloadSpec } from '../src/qemu/image.ts';
import { formatMigration, migrate, migrateToFile, type MigrationResult, type MigrationTuning } from '../src/qemu/migrate.ts';
import { startGuest, type QemuGuest } from '../src/qemu/process.ts';
import { startStreamTee } from '../src/qemu/stream-tee.ts';
import { freePort } from '../test/helpers/ports.ts';

const MIB = 1024 * 1024;
const MIX = 'zero:20,dup:20,random:20,text:40';

interface Recording {
  name: string;
  description: string;
  workload: WorkloadSpec;
  memoryMiB: number;
  /** Serial line after which the workload is in its steady state. */
  ready: RegExp;
  warmupMs: number;
  tuning: MigrationTuning;
  /** 'tee': live migration to a real destination, recorded on the way; 'file': exec: into a file. */
  mode: 'tee' | 'file';
}

const UNLIMITED: MigrationTuning = { parameters: { 'max-bandwidth': 1024 * MIB } };
const ROUNDS: MigrationTuning = { parameters: { 'max-bandwidth': 16 * MIB, 'downtime-limit': 300 } };
const memwriter = (mix: string): WorkloadSpec => ({
  name: 'memwriter',
  params: { 'wss-mb': 64, 'dirty-mbps': 12, mix, span: 64 },
});

/** About 10 MB of table + index before the load starts, so the application's memory is in the stream. */
const SQLLOAD: WorkloadSpec = { name: 'sqlload', params: { preload: 40000, 'rows-max': 60000 } };

const RECORDINGS: Recording[] = [
  { name: 'idle', description: 'idle guest (kernel + busybox initramfs), one fast pass', workload: { name: 'idle' },
    memoryMiB: 256, ready: /CLOUDNET READY/, warmupMs: 1000, tuning: UNLIMITED, mode: 'tee' },
  { name: 'idle-b', description: 'a second, independent boot of the same idle guest (cross-VM redundancy), via exec: to a file',
    workload: { name: 'idle' }, memoryMiB: 256, ready: /CLOUDNET READY/, warmupMs: 1000, tuning: UNLIMITED, mode: 'file' },
  { name: 'memwriter-mix', description: `memwriter 64 MiB working set, ${MIX}, 12 MB/s dirtying 64-byte spans, unthrottled`,
    workload: memwriter(MIX), memoryMiB: 256, ready: /MW READY/, warmupMs: 2000, tuning: UNLIMITED, mode: 'tee' },
  { name: 'memwriter-mix-rounds', description: `as memwriter-mix, QEMU capped at 16 MiB/s: many pre-copy rounds`,
    workload: memwriter(MIX), memoryMiB: 256, ready: /MW READY/, warmupMs: 2000, tuning: ROUNDS, mode: 'tee' },
  { name: 'memwriter-text-rounds', description: 'memwriter 64 MiB text-like working set, 12 MB/s, capped at 16 MiB/s',
    workload: memwriter('text:100'), memoryMiB: 256, ready: /MW READY/, warmupMs: 2000, tuning: ROUNDS, mode: 'tee' },
  { name: 'sqlload', description: 'SQLite (40000 preloaded rows) inserts/updates/deletes/queries on a RAM database, unthrottled',
    workload: SQLLOAD, memoryMiB: 256, ready: /SQL 10 /, warmupMs: 3000, tuning: UNLIMITED, mode: 'tee' },
  // sqlload dirties ~15 MB/s under TCG, so 16 MiB/s never converges: give it a little more room.
  { name: 'sqlload-rounds', description: 'as sqlload, QEMU capped at 24 MiB/s with a 500 ms downtime limit',
    workload: SQLLOAD, memoryMiB: 256, ready: /SQL 10 /, warmupMs: 3000,
    tuning: { parameters: { 'max-bandwidth': 24 * MIB, 'downtime-limit': 500 } }, mode: 'tee' },
];

async function sha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

async function record(rec: Recording, outDir: string, work: string): Promise<void> {
  const file = join(outDir, `${rec.name}.qemu`);
  const partial = `${file}.partial`;
  const guests: QemuGuest[] = [];
  try {
    // QEMU 7.2 streams, as guest/README.md lists them, unless CLOUDNET_QEMU_ROOT names a tree: the
    // test bed's default is the cached QEMU 10 now (src/qemu/process.ts qemuTree), and recordings
    // made before it must stay comparable.
    const qemu = process.env.CLOUDNET_QEMU_ROOT ? {} : { qemuBinary: 'qemu-system-x86_64' };
    const common = { workload: rec.workload, memoryMiB: rec.memoryMiB, workDir: work, ...qemu };
    const src = await startGuest({ ...common, name: `${rec.name}-src` });
    guests.push(src);
    await src.serial.waitFor(rec.ready, 120_000);
    await new Promise((r) => setTimeout(r, rec.warmupMs));
    let result: MigrationResult;
    let wire: { toDestination: number; toSource: number };
    if (rec.mode === 'file') {
      const r = await migrateToFile(src.qmp, partial, rec.tuning);
      result = r;
      wire = { toDestination: r.fileBytes, toSource: 0 };
    } else {
      const dst = await startGuest({ ...common, name: `${rec.name}-dst`, incoming: true });
      guests.push(dst);
      const incoming = await freePort();
      await dst.qmp.execute('migrate-incoming', { uri: `tcp:127.0.0.1:${incoming}` });
      const tee = await startStreamTee({ targetHost: '127.0.0.1', targetPort: incoming, recordPath: partial });
      try {
        result = await migrate({ ...rec.tuning, source: src.qmp, destination: undefined, uri: `tcp:127.0.0.1:${tee.port}`, timeoutMs: 120_000 });
        if (result.status === 'completed') {
          await dst.serial.waitFor(/HB \d+/, 10_000, dst.serial.count);
        }
        await src.stop();
        await tee.drained();
      } finally {
        await tee.close();
      }
      wire = { ...tee.forwarded };
    }
    if (result.status !== 'completed') throw new Error(`${rec.name}: migration ${result.status}: ${result.error ?? ''}`);
    renameSync(partial, file);
    const { samples, info, ...figures } = result;
    const version = src.qmp.version?.qemu;
    writeFileSync(join(outDir, `${rec.name}.json`), JSON.stringify({
      file: `${rec.name}.qemu`,
      bytes: wire.toDestination,
      returnPathBytes: wire.toSource,
      sha256: await sha256(file),
      description: rec.description,
      mode: rec.mode,
      qemu: version ? `${version.major}.${version.minor}.${version.micro}` : undefined,
      machine: 'q35',
      memoryMiB: rec.memoryMiB,
      pageSize: result.pageSize,
      workload: rec.workload,
      kernelCmdline: kernelCmdline(rec.workload),
      tuning: rec.tuning,
      migration: figures,
      queryMigrate: info,
      samples,
      recordedAt: new Date().toISOString(),
    }, null, 2) + '\n');
    console.log(`${rec.name}: ${(wire.toDestination / 1e6).toFixed(1)} MB ${formatMigration(result)}`);
  } finally {
    for (const g of guests) await g.stop(2000);
    rmSync(partial, { force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { only: { type: 'string' }, force: { type: 'boolean', default: false }, out: { type: 'string' } },
  });
  const outDir = values.out ?? join(cacheDir(), 'streams');
  mkdirSync(outDir, { recursive: true });
  const only = values.only ? new Set(values.only.split(',')) : undefined;
  const todo = RECORDINGS.filter((r) => !only || only.has(r.name));
  if (only && todo.length !== only.size) throw new Error(`unknown recording in --only; known: ${RECORDINGS.map((r) => r.name).join(', ')}`);
  const work = mkdtempSync(join(tmpdir(), 'cloudnet-record-'));
  try {
    for (const rec of todo) {
      if (!values.force && existsSync(join(outDir, `${rec.name}.qemu`)) && existsSync(join(outDir, `${rec.name}.json`))) {
        console.log(`${rec.name}: kept (use --force to re-record)`);
        continue;
      }
      await record(rec, outDir, work);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack : String(err));
  process.exitCode = 1;
});
