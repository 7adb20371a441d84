#!/usr/bin/env node
// Single entry point: `cloudnet <subcommand>`. Each subcommand lives in its own module and is
// loaded lazily so that, e.g., the relay does not pull in the Kubernetes client.
type Command = (argv: string[]) => Promise<number | void>;

const commands: Record<string, { describe: string; load: () => Promise<Command> }> = {
  version: { describe: 'print the version', load: async () => async () => { console.log('cloudnet 0.1.0'); } },
  operator: { describe: 'run the operator (controllers, leader election, metrics, probes)', load: async () => (await import('./operator/main.ts')).run },
  // Each subcommand module exports `run(argv)`; add one line per subcommand here.
  gateway: { describe: 'run the site WireGuard gateway agent (link, probes, key rotation)', load: async () => (await import('./link/cli.ts')).run },
  'route-agent': { describe: 'route the peer sites\' networks via the site gateway node (every non-gateway node)', load: async () => (await import('./link/route-agent-cli.ts')).run },
  agent: { describe: 'storage pre-copy agents: agent source|target (disk replication, async passes then synchronous)', load: async () => (await import('./storage/cli.ts')).run },
  relay: {
    describe: 'migration data relay: send, receive, analyze, encode, decode',
    // The relay knows no gateway: the nftables interceptor (src/link) is handed in from here.
    load: async () => {
      const { run } = await import('./relay/cli.ts');
      return (argv) => run(argv, { interceptor: async (spec) => (await import('./link/intercept.ts')).interceptorFromSpec(spec) });
    },
  },
};

function usage(): string {
  return ['usage: cloudnet <command> [args]', '', 'commands:',
    ...Object.entries(commands).map(([n, c]) => `  ${n.padEnd(12)} ${c.describe}`)].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '-h' || name === '--help') { console.log(usage()); return name ? 0 : 2; }
  const cmd = commands[name];
  if (!cmd) { console.error(`unknown command: ${name}\n\n${usage()}`); return 2; }
  const run = await cmd.load();
  const code = await run(rest);
  return typeof code === 'number' ? code : 0;
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/cli.ts') || process.argv[1]?.endsWith('/cli.js')) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exitCode = 1;
  });
}
