#!/usr/bin/env bash
# CI: the VM proving ground (holden as PID 1 on a pure cgroup v2 kernel under qemu). Builds the
# static holden, boots every scenario of tests/vm/scenarios,
# and fails when any check fails, gives no result or times out. See docs/vm.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh
exec tests/vm/run.sh "$@"
