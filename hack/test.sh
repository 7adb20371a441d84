#!/usr/bin/env bash
# The one test command (README, .ci/run): set up whatever is missing, then typecheck, lint and run
# every suite (unit, integration against real API servers, network and QEMU tests) on Node 24.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash hack/setup.sh
export PATH="$root/node_modules/.bin:$PATH"
export CLOUDNET_CACHE="${CLOUDNET_CACHE:-$(readlink -f "$root/.cache")}"
echo "node $(node --version)"
tsc -p tsconfig.json --noEmit
eslint src test hack bench
# Integration suites start real clusters and QEMU guests: two at a time fits the 2-core machines.
node --test --test-concurrency=2 --test-timeout=900000 --test-reporter=spec \
  'test/unit/**/*.test.ts' 'test/integration/**/*.test.ts' 'test/e2e/**/*.test.ts'
