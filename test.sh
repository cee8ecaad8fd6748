#!/usr/bin/env bash
# The whole test suite: unit and integration tests (the real binary on the real kernel), then
# the VM proving ground (holden as PID 1 on a pure cgroup v2 kernel) where it exists.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --examples --bins --quiet
cargo test --quiet -- --test-threads="${HOLDEN_TEST_THREADS:-4}"
if [ -x tests/vm/run.sh ]; then
    tests/vm/run.sh
fi
