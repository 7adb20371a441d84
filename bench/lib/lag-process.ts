// The status-lag watcher (status-lag.ts) in a process of its own, so that the timestamps it takes
// are not held up by the stand-in's work in the benchmark process (a tick of the stand-in parses
// every VM, VMI and VMIM of both clusters). `node bench/lib/lag-process.ts <source kubeconfig>
// <target kubeconfig>` prints "ready" once its caches are synced, and on the line "report" on stdin
// prints the report as one JSON line and exits.
import { createInterface } from 'node:readline';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from '../../src/kube/client.ts';
import { StatusLagTracker } from './status-lag.ts';

const [srcPath, dstPath] = process.argv.slice(2);
if (!srcPath || !dstPath) throw new Error('usage: lag-process.ts <source kubeconfig> <target kubeconfig>');
const client = (path: string, name: string) => {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return new KubeClient(kc, name);
};
const tracker = new StatusLagTracker(client(srcPath, 'site-a'), client(dstPath, 'site-b'));
await tracker.start();
process.stdout.write('ready\n');
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() !== 'report') continue;
  process.stdout.write(`${JSON.stringify(tracker.report())}\n`);
  await tracker.stop();
  process.exit(0);
}
