#!/usr/bin/env bash
# holden's own benchmark: build the release binary, then run bench/holden_bench.py with the
# arguments given (see `bench/run.sh --help`; `--cgroups` needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
exec python3 bench/holden_bench.py --holden "$PWD/target/release/holden" "$@"
