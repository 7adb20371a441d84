// kill -9 of the operator process at every phase: a new process resumes from status and the
// observed objects, and the migration completes with exactly one VMIM pair.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { useClusters } from '../env/index.ts';
import { Res } from '../../src/api/resources.ts';
import type { KubeObject } from '../../src/kube/rest.ts';
import {
  getWM, migrateUntilHeld, setupBed, vmimCount, waitForCondition, waitForPhase, waitForSourceVmimPhase, type Bed, type HoldPoint,
} from '../standin/harness.ts';
import { ANNOTATIONS } from '../standin/standin.ts';
import { HOLD_LINK_ANNOTATION } from '../standin/test-link.ts';
import { waitFor } from '../helpers/poll.ts';

const here = dirname(fileURLToPath(import.meta.url));
let bed: Bed;
let child: ChildProcess | undefined;

async function startChild(): Promise<ChildProcess> {
  const c = spawn(process.execPath, [join(here, '../standin/operator-process.ts'), bed.a.kubeconfigPath], {
    stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'error' },
  });
  let err = '';
  c.stderr?.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-4000); });
  // On a loaded 2-core machine a cold Node start with type stripping can take tens of seconds.
  // A process that did not come up is killed: left running, its pipes would keep this file alive.
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => { c.kill('SIGKILL'); reject(new Error(`operator process did not start within 60 s: ${err}`)); }, 60_000);
    c.stdout?.on('data', (d: Buffer) => { if (d.toString().includes('ready')) { clearTimeout(t); resolve(); } });
    c.once('exit', (code) => { clearTimeout(t); reject(new Error(`operator process exited (${code}): ${err}`)); });
  });
  c.removeAllListeners('exit');
  return c;
}

async function kill9(c: ChildProcess | undefined): Promise<void> {
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise((r) => c.once('exit', r));
  c.kill('SIGKILL');
  await exited;
}

after(async () => {
  await kill9(child);
  await bed?.stop();
});
useClusters(2, {
  setup: async (clusters) => {
    bed = await setupBed(clusters);
    child = await startChild();
  },
});

interface Hold extends HoldPoint {
  release: (ns: string) => Promise<void>;
}

const holds: Hold[] = [
  {
    name: 'ConnectingLink', wmAnnotations: { [HOLD_LINK_ANNOTATION]: 'true' },
    reached: (ns) => waitForCondition(bed.src, ns, 'mig', 'LinkReady', 'False', 'HeldByTest'),
    release: async (ns) => { await bed.src.patchMerge(Res.wanMigration, ns, 'mig', { metadata: { annotations: { [HOLD_LINK_ANNOTATION]: null } } }); },
  },
  {
    name: 'PreparingTarget', before: () => { bed.standB.holdReceivers = true; },
    reached: async (ns) => { await waitForPhase(bed.src, ns, 'mig', 'PreparingTarget'); await waitFor(() => bed.dst.tryGet(Res.vm, ns, 'vm'), { what: 'target VM' }); },
    release: async () => { bed.standB.holdReceivers = false; },
  },
  {
    name: 'AwaitingCutover', spec: { cutover: { mode: 'Manual' } },
    reached: (ns) => waitForPhase(bed.src, ns, 'mig', 'AwaitingCutover'),
    release: async (ns) => { await bed.src.patchMerge(Res.wanMigration, ns, 'mig', { spec: { cutover: { approved: true } } }); },
  },
  ...['Synchronizing', 'Scheduled'].map((p): Hold => ({
    name: `MigratingMemory (VMIM ${p})`, vmAnnotations: { [ANNOTATIONS.hangAt]: p },
    reached: (ns) => waitForSourceVmimPhase(bed, ns, p),
    release: async (ns) => { await bed.src.patchMerge(Res.vm, ns, 'vm', { metadata: { annotations: { [ANNOTATIONS.hangAt]: null } } }); },
  })),
  {
    name: 'CuttingOver', before: () => { bed.standB.holdCompletion = true; },
    reached: (ns) => waitForPhase(bed.src, ns, 'mig', 'CuttingOver'),
    release: async () => { bed.standB.holdCompletion = false; },
  },
];

describe('operator killed with SIGKILL', () => {
  holds.forEach((h, i) => {
    test(`at ${h.name}: a new process resumes one migration to Succeeded`, async () => {
      const ns = `restart-${i}`;
      child ??= await startChild(); // an earlier case may have failed to restart it
      await migrateUntilHeld(bed, ns, h);
      await kill9(child);
      child = undefined;
      await h.release(ns);
      child = await startChild();
      const wm = await waitForPhase(bed.src, ns, 'mig', 'Succeeded', 30_000);
      assert.equal(vmimCount(bed, wm.metadata.uid!), 2, 'exactly one VMIM pair');
      assert.equal((await bed.src.list(Res.vmim, ns)).items.length, 1);
      assert.equal((await bed.dst.list(Res.vmim, ns)).items.length, 1);
      const tvm = await bed.dst.get<KubeObject & { spec: { runStrategy?: string } }>(Res.vm, ns, 'vm');
      assert.equal(tvm.spec.runStrategy, 'Always');
      assert.equal((await getWM(bed.src, ns, 'mig'))?.status?.migrationID, wm.metadata.uid);
    });
  });
});
