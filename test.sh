#!/usr/bin/env bash
# The whole test suite: unit and integration tests (the real binary on the real kernel), then
# the VM proving ground (holden as PID 1 on a pure cgroup v2 kernel). One static holden is
# built first and shared by the container tests and the VM.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --examples --bins --quiet
tests/vm/run.sh -b
export HOLDEN_STATIC_BIN="$PWD/target/vm/x86_64-unknown-linux-gnu/release/holden"
cargo test --quiet -- --test-threads="${HOLDEN_TEST_THREADS:-4}"
tests/vm/run.sh -k
