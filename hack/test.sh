#!/usr/bin/env bash
# The one test command (README, .ci/run): set up whatever is missing, then typecheck, lint and run
# every suite (unit, integration against real API servers, network and QEMU tests) on Node 24.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash hack/setup.sh
export PATH="$root/node_modules/.bin:$PATH"
export CLOUDNET_CACHE="${CLOUDNET_CACHE:-$(readlink -f "$root/.cache")}"
source "$root/hack/qemu-env.sh"
echo "node $(node --version)"
tsc -p tsconfig.json --noEmit
eslint src test hack bench
# Unit and integration suites (real API servers, namespaces, wireguard-go, QEMU) two files at a
# time, which fits the 2-core machines; then the end-to-end suite on its own, because its TCG guests
# need both cores and timing-sensitive checks (heartbeat gaps, downtime) must not starve.
status=0
node --test --test-concurrency=2 --test-timeout=900000 --test-reporter=spec \
  'test/unit/**/*.test.ts' 'test/integration/**/*.test.ts' || status=1
node --test --test-concurrency=1 --test-timeout=1800000 --test-reporter=spec \
  'test/e2e/**/*.test.ts' || status=1
exit $status
