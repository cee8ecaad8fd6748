#!/usr/bin/env bash
# The whole test suite: system set-up (.ci/setup.sh, the only place that installs anything),
# unit and integration tests (the real binary on the real kernel), then the VM proving ground
# (holden as PID 1 on a pure cgroup v2 kernel). One static holden is built first and shared by
# the container tests and the VM.
#
# A test that cannot run here (not root, no podman, a pending VM scenario) is skipped, and says
# so in target/holden-skips.txt: the count and the reasons are printed at the end. With
# HOLDEN_REQUIRE_ALL=1 (.ci/run sets it) any skip fails the run.
set -euo pipefail
cd "$(dirname "$0")"
bash .ci/setup.sh
# The file tests/integration/harness.rs (skip) appends to: <target dir>/holden-skips.txt.
target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target=$PWD/$target ;; esac
export HOLDEN_SKIPS_FILE=$target/holden-skips.txt
mkdir -p "$target"
: >"$HOLDEN_SKIPS_FILE"
report_skips() {
    local n
    n=$(grep -c . "$HOLDEN_SKIPS_FILE" 2>/dev/null || true)
    echo "== ${n:-0} test(s) skipped"
    sed 's/^/   SKIP /' "$HOLDEN_SKIPS_FILE" 2>/dev/null || true
    if [ "${n:-0}" != 0 ] && [ "${HOLDEN_REQUIRE_ALL:-0}" = 1 ]; then
        echo "== HOLDEN_REQUIRE_ALL=1: every test must run here; failing" >&2
        return 1
    fi
}
trap 'report_skips || true' ERR
cargo build --release --examples --bins --quiet
tests/vm/run.sh -b
export HOLDEN_STATIC_BIN="$PWD/target/vm/x86_64-unknown-linux-gnu/release/holden"
cargo test --quiet -- --test-threads="${HOLDEN_TEST_THREADS:-4}"
tests/vm/run.sh -k
trap - ERR
report_skips
