// The operator as its own process, for kill -9 tests: `node test/standin/operator-process.ts
// <kubeconfig>`. Prints "ready" once started; SIGTERM stops it gracefully.
import { loadKubeConfig, startOperator } from '../../src/operator/main.ts';
import { operatorConfig, operatorFactories } from './harness.ts';
import { HoldableLink } from './test-link.ts';

const path = process.argv[2];
if (!path) throw new Error('usage: operator-process.ts <kubeconfig>');
const op = await startOperator(operatorConfig(loadKubeConfig(path)), operatorFactories({ link: new HoldableLink() }));
process.stdout.write('ready\n');
process.on('SIGTERM', () => { void op.stop().then(() => process.exit(0)); });
